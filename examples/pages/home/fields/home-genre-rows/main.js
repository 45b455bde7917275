// home-genre-rows: a field, one row per genre the user likes.
//
// From the catalogue (home-programs' items) and the user's genres
// (home-interests, most liked first): for each genre, its best rated
// programs.
//
//   {"programs": [...], "genres": ["drama", "documentary"], "per_row": 2}
//   -> [{"genre": "drama", "title": "Drama", "items": [{"id": "p18", "title": "The Inheritance", ...}, ...]},
//       {"genre": "documentary", "title": "Documentary", "items": [...]}]
//
// A genre with no program gives no row; genres null gives no rows.

exports.handler = async (event) => {
  const perRow = event.per_row ?? 8;
  return (event.genres ?? [])
    .map((genre) => ({
      genre,
      title: genre[0].toUpperCase() + genre.slice(1),
      items: event.programs
        .filter((p) => p.genre === genre)
        .sort((a, b) => b.rating - a.rating)
        .slice(0, perRow)
        .map(tile),
    }))
    .filter((row) => row.items.length > 0);
};

// A program as a row shows it.
function tile(p) {
  return {
    id: p.id,
    title: p.title,
    genre: p.genre,
    thumbnail: p.thumbnail,
    link: `/watch/${p.id}`,
    duration_min: p.duration_min,
    detail: `${p.year} · ${p.duration_min} min`,
  };
}
