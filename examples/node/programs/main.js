// A data source: programs from a small fixed catalogue.
//
//   {"limit": 3}                   -> the first 3 programs
//   {"limit": 2, "genre": "news"}  -> the first 2 news programs
//
// Each program is {id, title, genre, duration_min}. Without `limit` all the
// matching programs come back; a genre nobody has gives an empty list.

const CATALOGUE = [
  { id: 'p01', title: 'Morning Headlines', genre: 'news', duration_min: 30 },
  { id: 'p02', title: 'Match of the Week', genre: 'sport', duration_min: 90 },
  { id: 'p03', title: 'The Lighthouse Keeper', genre: 'drama', duration_min: 55 },
  { id: 'p04', title: 'Dino Friends', genre: 'kids', duration_min: 15 },
  { id: 'p05', title: 'Deep Oceans', genre: 'documentary', duration_min: 50 },
  { id: 'p06', title: 'Evening Bulletin', genre: 'news', duration_min: 25 },
  { id: 'p07', title: 'Track and Field Live', genre: 'sport', duration_min: 120 },
  { id: 'p08', title: 'Harbour Street', genre: 'drama', duration_min: 45 },
  { id: 'p09', title: 'Space Puppets', genre: 'kids', duration_min: 20 },
  { id: 'p10', title: 'Mountains of Fire', genre: 'documentary', duration_min: 60 },
  { id: 'p11', title: 'World Tonight', genre: 'news', duration_min: 40 },
  { id: 'p12', title: 'Cup Final Replay', genre: 'sport', duration_min: 100 },
];

exports.GENRES = [...new Set(CATALOGUE.map((p) => p.genre))];

exports.handler = async (event) => {
  const { limit, genre } = event ?? {};
  if (limit !== undefined && limit !== null && (!Number.isInteger(limit) || limit < 0)) {
    throw new TypeError(`programs: "limit" must be a whole number of 0 or more, not ${JSON.stringify(limit)}`);
  }
  if (genre !== undefined && genre !== null && typeof genre !== 'string') {
    throw new TypeError(`programs: "genre" must be a string such as "news", not ${JSON.stringify(genre)}`);
  }
  const matching = genre == null ? CATALOGUE : CATALOGUE.filter((p) => p.genre === genre);
  return (limit == null ? matching : matching.slice(0, limit)).map((p) => ({ ...p }));
};
