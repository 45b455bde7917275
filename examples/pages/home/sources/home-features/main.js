// home-features: a data source, the editors' features (features.json):
// hero banners and promotions, each pointing at a program of the catalogue.
//
//   {"placement": "home"}                 -> {"placement": "home", "items": [every home feature, by priority]}
//   {"placement": "home", "kind": "hero"} -> only the hero banners
//   {"placement": "weather"}              -> {"placement": "weather", "items": []}
//
// Each item is {id, kind, program_id, headline, image, priority}.

const fs = require('fs');
const path = require('path');

const FEATURES = JSON.parse(fs.readFileSync(path.join(__dirname, 'features.json'), 'utf8'));

exports.handler = async (event) => {
  const placement = event.placement ?? 'home';
  const kind = event.kind ?? null;
  const items = FEATURES
    .filter((f) => f.placements.includes(placement) && (kind === null || f.kind === kind))
    .sort((a, b) => a.priority - b.priority)
    .map(({ placements, ...feature }) => feature); // where it shows is this source's business
  return { placement, items };
};
