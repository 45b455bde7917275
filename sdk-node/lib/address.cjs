'use strict';
// Where the client finds hearth and its token.

const fs = require('node:fs');
const path = require('node:path');

const DEFAULT_ADDR = 'http://127.0.0.1:7700';
const DEFAULT_PORT = 7700;

/**
 * `addr` as a URL: `host:port`, `host`, `http://host:port` or
 * `https://host:port` (a missing port is hearth's, 7700).
 */
function parseAddr(addr) {
  let text = String(addr || '').trim();
  if (!text) text = DEFAULT_ADDR;
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) text = `http://${text}`;
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new TypeError(
      `hearth address ${JSON.stringify(addr)} is not host:port or an http(s):// URL`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`hearth address ${JSON.stringify(addr)}: only http:// and https:// are served`);
  }
  // new URL drops a scheme's default port; hearth has its own default.
  const explicitPort = /^[a-z]+:\/\/(\[[^\]]*\]|[^/:]*):(\d+)/i.exec(text);
  const port = url.port ? Number(url.port) : explicitPort ? Number(explicitPort[2]) : DEFAULT_PORT;
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const hostPart = hostname.includes(':') ? `[${hostname}]` : hostname;
  return {
    protocol: url.protocol,
    hostname,
    port,
    basePath: url.pathname.replace(/\/+$/, ''),
    href: `${url.protocol}//${hostPart}:${port}`,
  };
}

/** The daemon's default data directory, as `hearth serve` picks it. */
function defaultDataDirs() {
  const dirs = [];
  if (process.env.HEARTH_DATA) dirs.push(process.env.HEARTH_DATA);
  dirs.push(path.resolve('hearth-data'));
  const xdg = process.env.XDG_DATA_HOME;
  if (xdg) dirs.push(path.join(xdg, 'hearth'));
  else if (process.env.HOME) dirs.push(path.join(process.env.HOME, '.local/share/hearth'));
  dirs.push('/var/lib/hearth');
  return dirs;
}

/**
 * The token to send when none is given: HEARTH_TOKEN, else (with
 * `local: true`) the admin token a daemon on this host wrote to its data
 * directory (HEARTH_DATA, ./hearth-data, the default one, /var/lib/hearth)
 * if it listens at `addr`.
 */
function findToken({ local = false, addr } = {}) {
  const env = (process.env.HEARTH_TOKEN || '').trim();
  if (env) return env;
  if (!local) return null;
  const want = addr ? parseAddr(addr) : null;
  const dataEnv = process.env.HEARTH_DATA;
  for (const dir of defaultDataDirs()) {
    try {
      if (want && dir !== dataEnv) {
        const listen = fs.readFileSync(path.join(dir, 'daemon.addr'), 'utf8').trim();
        if (!sameAddress(listen, want)) continue;
      }
      const token = fs.readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();
      if (token) return token;
    } catch {
      // not this one
    }
  }
  return null;
}

function sameAddress(listen, want) {
  let l;
  try {
    l = parseAddr(listen);
  } catch {
    return false;
  }
  if (l.port !== want.port) return false;
  if (l.hostname === want.hostname) return true;
  if (l.hostname === '0.0.0.0' || l.hostname === '::') return true;
  return want.hostname === 'localhost' && (l.hostname === '127.0.0.1' || l.hostname === '::1');
}

module.exports = { parseAddr, findToken, DEFAULT_ADDR };
