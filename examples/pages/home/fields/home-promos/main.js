// home-promos: a field, the strip of promotion tiles under the rows.
//
// The editors' promotions (home-features' items of kind "promo"), each
// joined with its program from the catalogue (home-programs' items):
//
//   {"features": [{"id": "f05", "kind": "promo", "program_id": "p27", "headline": "...", "image": "..."}], "programs": [...]}
//   -> [{"id": "f05", "headline": "Election night: ...", "image": "/img/features/f05-election.jpg",
//        "program_title": "Election Night Special", "link": "/watch/p27"}]
//
// A promotion of a program the catalogue does not have is left out.

exports.handler = async (event) => {
  const programs = new Map(event.programs.map((p) => [p.id, p]));
  return (event.features ?? [])
    .filter((f) => f.kind === 'promo' && programs.has(f.program_id))
    .map((f) => ({
      id: f.id,
      headline: f.headline,
      image: f.image,
      program_title: programs.get(f.program_id).title,
      link: `/watch/${f.program_id}`,
    }));
};
