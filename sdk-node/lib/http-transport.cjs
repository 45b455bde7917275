'use strict';
// The HTTP transport: sends one request to hearth's gateway over a
// keep-alive connection and returns its answer, or throws the HearthError
// it carries. It knows HTTP; the Client above it knows hearth's
// operations, retries and results. Another transport (a published function
// run in this process, say) implements the same two methods:
//
//   call(spec)    -> {value, function, version, requestId, start, timing, durationMs, logTail}
//                    (spec.page: a page, at /page/ instead of /fn/)
//   request(spec) -> the answer's JSON (management routes)
//   close()
//
// and may hand what it does not serve itself to an HttpTransport.

const http = require('node:http');
const https = require('node:https');
const fs = require('node:fs');

const { ConnectionError, ClientTimeoutError, fromResponse } = require('./errors.cjs');

/**
 * Errors of a reused keep-alive socket that hearth had already closed (it
 * closes an idle connection after server.header_timeout, 30 s): the request
 * met a dead socket before any byte of an answer came back.
 */
const STALE_SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/** Errors that mean nothing listens at the address. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
]);

class HttpTransport {
  /**
   * @param {object} o
   * @param {ReturnType<import('./address.cjs').parseAddr>} o.addr
   * @param {string|null} o.token
   * @param {string|Buffer|undefined} o.ca  PEM (https)
   * @param {number} o.idleSocketMs  how long an idle connection is kept
   * @param {number} o.maxSockets
   */
  constructor({ addr, token, ca, idleSocketMs = 15000, maxSockets = 64 }) {
    this.addr = addr;
    this.token = token || null;
    const tls = addr.protocol === 'https:';
    this.mod = tls ? https : http;
    if (tls && ca === undefined && process.env.HEARTH_CA_CERT) {
      ca = fs.readFileSync(process.env.HEARTH_CA_CERT);
    }
    this.tlsOptions = tls && ca !== undefined ? { ca } : {};
    // Idle sockets are closed after idleSocketMs, well before hearth's own
    // 30 s, so a reused socket is rarely one hearth is closing.
    this.agent = new this.mod.Agent({
      keepAlive: true,
      maxSockets,
      timeout: idleSocketMs,
      scheduling: 'lifo',
      ...this.tlsOptions,
    });
  }

  close() {
    this.agent.destroy();
  }

  /** Call a function: spec {target, event, requestId, log, timeoutMs}. */
  async call(spec) {
    const headers = {};
    if (spec.requestId) headers['x-request-id'] = spec.requestId;
    if (spec.log) headers['x-hearth-log'] = 'tail';
    const started = process.hrtime.bigint();
    const res = await this.send({
      method: 'POST',
      path: `${spec.page ? '/page/' : '/fn/'}${spec.target}`,
      body: spec.event === undefined ? {} : spec.event,
      headers,
      timeoutMs: spec.timeoutMs,
      // Function calls carry the token only when one was given: calls to
      // open applications do not look at it, key-protected ones need it.
      auth: true,
    });
    const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    if (res.status !== 200) throw fromResponse(res.status, res.headers, res.text);
    let value;
    try {
      value = res.text.length ? JSON.parse(res.text) : null;
    } catch (e) {
      throw new ConnectionError(`hearth at ${this.addr.href} answered a call with a body that is not JSON`, {
        address: this.addr.href,
        sent: true,
        cause: e,
        status: res.status,
      });
    }
    const h = res.headers;
    const version = h['x-hearth-version'] !== undefined ? Number(h['x-hearth-version']) : null;
    let logTail = null;
    if (spec.log && typeof h['x-hearth-log'] === 'string') {
      logTail = Buffer.from(h['x-hearth-log'], 'base64').toString('utf8');
    }
    return {
      value,
      function: h['x-hearth-function'] ?? null,
      version,
      requestId: h['x-request-id'] ?? null,
      start: h['x-hearth-start'] ?? null,
      timing: parseServerTiming(h['server-timing']),
      durationMs,
      logTail,
    };
  }

  /**
   * A management request: spec {method, path, query, body, timeoutMs}.
   * Returns the answer's JSON; throws the error hearth answered.
   */
  async request(spec) {
    let path = spec.path;
    if (spec.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(spec.query)) {
        if (v !== undefined && v !== null) q.set(k, String(v));
      }
      const s = q.toString();
      if (s) path += `?${s}`;
    }
    const res = await this.send({ ...spec, path, auth: true });
    if (res.status < 200 || res.status > 299) {
      throw fromResponse(res.status, res.headers, res.text);
    }
    if (!res.text.length) return null;
    try {
      return JSON.parse(res.text);
    } catch (e) {
      throw new ConnectionError(
        `hearth at ${this.addr.href} answered ${spec.method} ${spec.path} with a body that is not JSON`,
        { address: this.addr.href, sent: true, cause: e, status: res.status },
      );
    }
  }

  /**
   * One HTTP exchange; resolves {status, headers, text} for any status.
   * A request that met a dead reused keep-alive socket before any answer
   * byte is sent once more, on a new connection (see README, "Retries").
   */
  async send(spec) {
    try {
      return await this.exchange(spec, this.agent);
    } catch (e) {
      if (e && e.staleSocket) return this.exchange(spec, false);
      throw e;
    }
  }

  exchange(spec, agent) {
    const body =
      spec.body === undefined ? null : Buffer.from(JSON.stringify(spec.body), 'utf8');
    const headers = { accept: 'application/json', ...spec.headers };
    if (body) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(body.length);
    }
    if (spec.auth && this.token) headers.authorization = `Bearer ${this.token}`;
    const address = this.addr.href;
    const what = `${spec.method} ${spec.path.split('?')[0]}`;
    return new Promise((resolve, reject) => {
      let answered = false;
      let sent = false;
      let done = false;
      let timer = null;
      const finish = (fn, v) => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        fn(v);
      };
      const req = this.mod.request({
        protocol: this.addr.protocol,
        hostname: this.addr.hostname,
        port: this.addr.port,
        method: spec.method,
        path: this.addr.basePath + spec.path,
        headers,
        agent,
        ...(agent === false ? this.tlsOptions : {}),
      });
      // The agent's idle timer also fires on a busy socket; the request's
      // own deadline is the timer below.
      req.on('timeout', () => {});
      if (spec.timeoutMs && spec.timeoutMs > 0) {
        timer = setTimeout(() => {
          const err = new ClientTimeoutError(
            `no answer from hearth at ${address} to ${what} within ${spec.timeoutMs} ms (timeoutMs)` +
              (sent ? '; the request was sent, so it may have run' : ''),
            { address, timeoutMs: spec.timeoutMs },
          );
          req.destroy(err);
          finish(reject, err);
        }, spec.timeoutMs);
      }
      req.on('finish', () => {
        sent = true;
      });
      // Bytes the socket had read before this request: a reused socket
      // that read nothing more had no byte of an answer.
      let readBefore = 0;
      req.on('socket', (socket) => {
        readBefore = socket.bytesRead;
      });
      req.on('response', (res) => {
        answered = true;
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          finish(resolve, {
            status: res.statusCode,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          });
        });
        res.on('error', (e) => finish(reject, lost(e)));
        res.on('aborted', () => finish(reject, lost(new Error('the answer was cut short'))));
      });
      req.on('error', (e) => {
        if (done) return;
        const silent = !answered && (!req.socket || req.socket.bytesRead === readBefore);
        if (silent && req.reusedSocket && STALE_SOCKET_CODES.has(e.code) && agent !== false) {
          const err = lost(e);
          err.staleSocket = true;
          finish(reject, err);
          return;
        }
        if (!answered && UNREACHABLE_CODES.has(e.code)) {
          finish(
            reject,
            new ConnectionError(
              `cannot reach hearth at ${address} (${e.code}): start it with \`hearth serve\`, ` +
                'or set HEARTH_ADDR (or the addr option) to the address it listens on',
              { address, sent: false, cause: e },
            ),
          );
          return;
        }
        finish(reject, lost(e));
      });
      function lost(e) {
        const code = e && e.code ? ` (${e.code})` : '';
        return new ConnectionError(
          `the connection to hearth at ${address} broke during ${what} before a whole answer came${code}` +
            (sent ? '; the request was sent, so it may have run' : '; the request was not sent whole'),
          { address, sent, cause: e },
        );
      }
      req.end(body || undefined);
    });
  }
}

/** `queue;dur=0.1, spawn;dur=2, load;dur=3, run;dur=4` -> {queueMs, ...}. */
function parseServerTiming(header) {
  if (typeof header !== 'string' || !header) return null;
  const out = {};
  for (const part of header.split(',')) {
    const [name, ...params] = part.trim().split(';');
    const dur = params.map((p) => p.trim()).find((p) => p.startsWith('dur='));
    if (name && dur) out[`${name.trim()}Ms`] = Number(dur.slice(4));
  }
  return out;
}

module.exports = { HttpTransport, parseServerTiming };
