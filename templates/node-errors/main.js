// {{name}}: looks a program up by id.
//
//   {"id": "p01"} -> {"id": "p01", "title": "Morning Headlines", ...}
//   {"id": "p42"} -> NOT_FOUND: "no program p42" (404, declared in hearth.toml)
//   {}            -> MISSING_ID (400)
//
// An error code is thrown by name with HearthError (from the runtime's
// `hearth` module); hearth answers it with the status its [errors.CODE]
// declares.

const PROGRAMS = {
  p01: { title: 'Morning Headlines', genre: 'news' },
  p02: { title: 'Match of the Week', genre: 'sport' },
  p03: { title: 'The Lighthouse Keeper', genre: 'drama' },
};

exports.handler = async (event) => {
  const id = event?.id;
  if (typeof id !== 'string' || id === '') {
    const { HearthError } = require('hearth');
    throw new HearthError('MISSING_ID', 'give the program\'s id, for example {"id": "p01"}');
  }
  const program = Object.hasOwn(PROGRAMS, id) ? PROGRAMS[id] : undefined;
  if (program === undefined) {
    const { HearthError } = require('hearth');
    throw new HearthError('NOT_FOUND', `no program ${id}`);
  }
  return { id, ...program };
};
