// require() works and gives the same objects as import; the types exist.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

test('require("@hearth/sdk") works', async () => {
  const sdk = require('..');
  assert.equal(typeof sdk.Client, 'function');
  assert.equal(typeof sdk.HearthError, 'function');
  assert.ok(new sdk.FunctionError('x') instanceof sdk.HearthError);
  const esm = await import('../index.mjs');
  assert.equal(esm.Client, sdk.Client, 'one implementation for both module systems');
  assert.equal(esm.default.Client, sdk.Client);
  // Every export of the CommonJS module is a named export of the ESM one.
  for (const name of Object.keys(sdk)) {
    if (name !== 'default') assert.ok(name in esm, `index.mjs exports ${name}`);
  }
});

test('package.json exports and the types file', () => {
  const root = path.join(__dirname, '..');
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const exp = pkg.exports['.'];
  for (const key of ['import', 'require', 'types']) {
    assert.ok(fs.existsSync(path.join(root, exp[key])), `${key}: ${exp[key]}`);
  }
  assert.deepEqual(pkg.dependencies ?? {}, {});
  const dts = fs.readFileSync(path.join(root, exp.types), 'utf8');
  const sdk = require('..');
  for (const name of Object.keys(sdk)) {
    if (name === 'default') continue;
    assert.match(dts, new RegExp(`export (declare )?(class|function|const|interface) ${name}\\b`), `index.d.ts declares ${name}`);
  }
});
