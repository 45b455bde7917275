// {{name}}: a field of a page. It asks the data source {{datasource}} for
// programs (a nested call: through the worker, never over HTTP) and maps
// them to the row the page shows:
//
//   {"genre": "news"} -> {"field": "{{name}}", "title": "News",
//                         "items": [{"label": "Morning Headlines", "link": "/programs/p01", "detail": "30 min"}, ...]}
//
// If the data source fails, the row is empty and "error" says why: one
// broken source must not fail the whole page.

const SOURCE = '{{datasource}}';
const ROW_SIZE = 4;

exports.handler = async (event, context) => {
  const genre = typeof event?.genre === 'string' && event.genre !== '' ? event.genre : null;
  const ask = genre === null ? { limit: ROW_SIZE } : { genre, limit: ROW_SIZE };
  const row = {
    field: '{{name}}',
    title: genre === null ? 'Programs' : genre[0].toUpperCase() + genre.slice(1),
    items: [],
  };
  let programs;
  try {
    programs = await context.invoke(SOURCE, ask);
  } catch (err) {
    if (!(err instanceof context.HearthInvokeError)) throw err;
    row.error = `${SOURCE}: ${err.code}`;
    return row;
  }
  row.items = (Array.isArray(programs) ? programs : [])
    .filter((p) => p && typeof p.id === 'string')
    .map((p) => ({ label: String(p.title ?? ''), link: `/programs/${p.id}`, detail: `${p.duration_min ?? '?'} min` }));
  return row;
};
