'use strict';
// A function directory as a deploy body, the way `hearth deploy DIR` reads
// it (daemon/api/src/bundle.rs, Bundle::from_dir): every regular file with
// its path relative to the directory ('/'-separated), its content in base64
// and whether it is executable; VCS folders, caches, node_modules and *.pyc
// are left out, and a symbolic link is refused. The daemon checks the rest
// (manifest, paths, sizes) and answers bad_manifest / bad_bundle.

const fs = require('node:fs');
const path = require('node:path');

/** Directory and file names never deployed (as the CLI). */
const SKIPPED = new Set(['__pycache__', 'node_modules', '.git', '.hg', '.svn', '.venv', '.DS_Store']);

function readBundle(dir) {
  let st;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    throw new Error(`${dir}: ${e.code === 'ENOENT' ? 'no such directory' : e.message}; give the directory that holds the function's hearth.toml`);
  }
  if (!st.isDirectory()) {
    throw new Error(`${dir} is not a directory; give the directory that holds the function's hearth.toml`);
  }
  const files = [];
  walk(dir, [], files);
  // Byte order of the UTF-8 paths, as the CLI sorts them.
  files.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  return files;
}

function walk(dir, parts, out) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const name = entry.name;
    if (SKIPPED.has(name) || name.endsWith('.pyc')) continue;
    const full = path.join(dir, name);
    if (entry.isSymbolicLink()) {
      throw new Error(`${full}: symbolic links are not deployed; copy the file into the directory instead`);
    }
    if (entry.isDirectory()) {
      walk(full, [...parts, name], out);
      continue;
    }
    if (!entry.isFile()) continue;
    const data = fs.readFileSync(full);
    const mode = fs.statSync(full).mode;
    out.push({
      path: [...parts, name].join('/'),
      data: data.toString('base64'),
      executable: (mode & 0o111) !== 0,
    });
  }
}

/** Files given in memory: {path, data: string|Buffer|Uint8Array, executable?}. */
function filesFromList(list) {
  return list.map((f) => {
    if (!f || typeof f.path !== 'string') throw new TypeError('each file needs a path (string)');
    const data =
      typeof f.data === 'string' ? Buffer.from(f.data, 'utf8') : Buffer.from(f.data ?? []);
    return { path: f.path, data: data.toString('base64'), executable: Boolean(f.executable) };
  });
}

module.exports = { readBundle, filesFromList, SKIPPED };
