// home-hero: a field, the big banner at the top of the page.
//
// From the editors' hero features (home-features' items), the catalogue
// (home-programs' items) and the user's genres (home-interests): the hero
// of the genre the user likes most, else the editors' first hero.
//
//   {"features": [{"id": "f01", "kind": "hero", "program_id": "p02", ...}], "programs": [...], "genres": ["drama"]}
//   -> {"feature_id": "f01", "program_id": "p02", "title": "Harbour Lights",
//       "headline": "New episode: ...", "synopsis": "...", "image": "/img/features/f01-harbour-lights.jpg",
//       "link": "/watch/p02", "genre": "drama", "duration_min": 55}
//
// No hero feature at all: the best rated program, with its thumbnail. An
// empty catalogue is refused by [input] (programs has minItems = 1).

exports.handler = async (event) => {
  const programs = new Map(event.programs.map((p) => [p.id, p]));
  const heroes = (event.features ?? [])
    .filter((f) => f.kind === 'hero' && programs.has(f.program_id))
    .sort((a, b) => a.priority - b.priority);
  const genreOf = (f) => programs.get(f.program_id).genre;
  // The user's genres in the order they like them; the first that has a hero wins.
  const liked = (event.genres ?? []).map((g) => heroes.find((f) => genreOf(f) === g)).find(Boolean);
  const hero = liked ?? heroes[0];
  if (hero === undefined) {
    const best = [...programs.values()].sort((a, b) => b.rating - a.rating)[0];
    return banner(best, { id: null, headline: best.title, image: best.thumbnail });
  }
  return banner(programs.get(hero.program_id), hero);
};

function banner(program, feature) {
  return {
    feature_id: feature.id,
    program_id: program.id,
    title: program.title,
    headline: feature.headline,
    synopsis: program.synopsis ?? '',
    image: feature.image,
    link: `/watch/${program.id}`,
    genre: program.genre,
    duration_min: program.duration_min,
  };
}
