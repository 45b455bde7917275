// home-channels: a data source, the live channels (channels.json).
//
//   {}                   -> {"items": [every channel, by number]}
//   {"ids": ["c3", "c1"]} -> those two, in that order
//   {"ids": ["c9"]}       -> NOT_FOUND (404)
//
// Each item is {id, number, name, genre, logo}.

const fs = require('fs');
const path = require('path');
const { HearthError } = require('hearth');

const CHANNELS = JSON.parse(fs.readFileSync(path.join(__dirname, 'channels.json'), 'utf8'));
const BY_ID = new Map(CHANNELS.map((c) => [c.id, c]));

exports.handler = async (event) => {
  const ids = event.ids ?? null;
  if (ids === null) return { items: [...CHANNELS].sort((a, b) => a.number - b.number) };
  const unknown = ids.filter((id) => !BY_ID.has(id));
  if (unknown.length > 0) {
    throw new HearthError('NOT_FOUND', `no channel ${unknown.join(', ')}; the channels are ${[...BY_ID.keys()].join(', ')}`);
  }
  return { items: ids.map((id) => BY_ID.get(id)) };
};
