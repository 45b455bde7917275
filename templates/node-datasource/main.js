// {{name}}: a data source. It reads data/programs.json, shipped with the
// code, once per worker, and returns the programs that match its input:
//
//   {}                            -> every program
//   {"genre": "news"}             -> the news programs
//   {"genre": "news", "limit": 2} -> the first two of them
//
// hearth.toml's [input] and [output] JSON Schemas say the same for callers.

const fs = require('fs');
const path = require('path');

const PROGRAMS = JSON.parse(fs.readFileSync(path.join(__dirname, 'data', 'programs.json'), 'utf8'));

exports.handler = async (event) => {
  const { genre, limit } = event ?? {};
  if (genre !== undefined && genre !== null && typeof genre !== 'string') {
    throw new TypeError(`{{name}}: "genre" must be a string such as "news", not ${JSON.stringify(genre)}`);
  }
  if (limit !== undefined && limit !== null && (!Number.isInteger(limit) || limit < 0)) {
    throw new TypeError(`{{name}}: "limit" must be a whole number of 0 or more, not ${JSON.stringify(limit)}`);
  }
  const matching = PROGRAMS.filter((p) => genre == null || p.genre === genre).map((p) => ({ ...p }));
  return limit == null ? matching : matching.slice(0, limit);
};
