// The client's retry policy and connection handling against small local
// servers that answer exactly what a test needs (no daemon needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';

import * as sdk from '../index.mjs';

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

/** An HTTP server whose n-th request (from 1) gets answers[n-1] (the last one repeats). */
async function scripted(answers) {
  let n = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const a = answers[Math.min(n, answers.length - 1)];
      n += 1;
      res.writeHead(a.status, { 'content-type': 'application/json', ...(a.headers || {}) });
      res.end(JSON.stringify(a.body));
    });
  });
  const port = await listen(server);
  return { port, count: () => n, close: () => server.close() };
}

const refusal = (code, status, retryAfter) => ({
  status,
  headers: retryAfter === undefined ? {} : { 'retry-after': String(retryAfter) },
  body: { error: { code, message: `${code}!`, hint: 'h', function: 'f', request_id: 'r1' } },
});
const ok = { status: 200, headers: { 'x-hearth-version': '3', 'x-hearth-function': 'f', 'x-hearth-start': 'fresh', 'server-timing': 'queue;dur=0.5, spawn;dur=1, load;dur=2, run;dur=3.25' }, body: { ok: true } };

test('refusals with Retry-After are retried, up to retries', async () => {
  for (const code of ['queue_full', 'overloaded', 'rate_limited', 'app_over_budget', 'too_many_connections', 'crash_loop']) {
    const status = ['queue_full', 'rate_limited', 'app_over_budget'].includes(code) ? 429 : 503;
    const s = await scripted([refusal(code, status, 0), refusal(code, status, 0), ok]);
    const c = new sdk.Client({ addr: `127.0.0.1:${s.port}`, token: null, retries: 2 });
    const r = await c.invoke('f');
    assert.deepEqual(r.value, { ok: true });
    assert.equal(r.attempts, 3, code);
    assert.equal(r.version, 3);
    assert.equal(r.cold, true);
    assert.deepEqual(r.timing, { queueMs: 0.5, spawnMs: 1, loadMs: 2, runMs: 3.25 });
    assert.equal(s.count(), 3);
    c.close();
    s.close();
  }
  const s = await scripted([refusal('queue_full', 429, 0)]);
  const c = new sdk.Client({ addr: `127.0.0.1:${s.port}`, token: null, retries: 2 });
  await assert.rejects(c.invoke('f'), (e) => {
    assert.ok(e instanceof sdk.QueueFullError);
    assert.equal(e.attempts, 3);
    assert.equal(e.retryAfter, 0);
    assert.equal(e.requestId, 'r1');
    return true;
  });
  assert.equal(s.count(), 3);
  c.close();
  s.close();
});

test('calls that ran, or refusals without Retry-After, are not retried', async () => {
  for (const answer of [
    refusal('function_error', 500),
    refusal('timeout', 504),
    refusal('worker_died', 502),
    refusal('out_of_memory', 502),
    refusal('overloaded', 503), // no Retry-After
    refusal('queue_full', 429, 30), // longer than maxRetryWaitMs
    refusal('internal', 503, 0), // not a refusal code
  ]) {
    const s = await scripted([answer, ok]);
    const c = new sdk.Client({ addr: `127.0.0.1:${s.port}`, token: null, retries: 3 });
    await assert.rejects(c.invoke('f'), (e) => e.code === answer.body.error.code && e.attempts === 1);
    assert.equal(s.count(), 1, answer.body.error.code);
    c.close();
    s.close();
  }
});

test('management requests: token, query, body; errors without a JSON body', async () => {
  let seen = null;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen = { method: req.method, url: req.url, auth: req.headers.authorization, type: req.headers['content-type'], body };
      if (req.url.startsWith('/broken')) {
        res.writeHead(502, { 'content-type': 'text/html' });
        res.end('<html>bad gateway</html>');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"function":"f","calls":[],"last_seq":0,"dropped":0}');
    });
  });
  const port = await listen(server);
  const c = new sdk.Client({ addr: `http://127.0.0.1:${port}/`, token: 'hearth_t' });
  const broken = new sdk.Client({ addr: `http://127.0.0.1:${port}/broken`, token: null });
  // Closed however the test ends: a failed assertion must not leave the
  // server (and so `node --test`) running.
  try {
    await c.logs('f', { requestId: 'abc', status: 'error', limit: 3, since: 1000 });
    assert.equal(seen.method, 'GET');
    assert.equal(seen.url, '/api/v1/functions/f/calls?since_ms=1000&request_id=abc&status=error&limit=3');
    assert.equal(seen.auth, 'Bearer hearth_t');
    await c.publish('f', 2, { message: 'm' });
    assert.equal(seen.type, 'application/json');
    assert.deepEqual(JSON.parse(seen.body), { version: 2, message: 'm', allow_breaking: false });
    await c.invoke('f', { a: 1 }, { version: 4 });
    assert.equal(seen.url, '/fn/f@4');
    assert.deepEqual(JSON.parse(seen.body), { a: 1 });
    await assert.rejects(c.invoke('f', {}, { version: 1, alias: 'x' }), TypeError);
    await assert.rejects(broken.health(), (e) => e.constructor === sdk.HearthError && e.code === 'unexpected_response' && e.status === 502);
  } finally {
    c.close();
    broken.close();
    server.close();
  }
});

/**
 * A server that answers the first request of each connection and, on the
 * second request of a connection, closes it without a byte of answer (as a
 * server closing an idle keep-alive connection just as a request comes).
 */
async function closesReusedConnections() {
  let connections = 0;
  let requests = 0;
  const server = net.createServer((socket) => {
    connections += 1;
    let served = 0;
    let buf = '';
    socket.on('data', (d) => {
      buf += d;
      while (buf.includes('\r\n\r\n')) {
        const end = buf.indexOf('\r\n\r\n') + 4;
        const len = Number(/content-length: *(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
        if (buf.length < end + len) return;
        buf = buf.slice(end + len);
        requests += 1;
        served += 1;
        if (served > 1) {
          socket.destroy();
          return;
        }
        socket.write(
          'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nx-hearth-version: 1\r\nx-hearth-start: warm\r\n\r\n{}',
        );
      }
    });
    socket.on('error', () => {});
  });
  const port = await listen(server);
  return { port, connections: () => connections, requests: () => requests, close: () => server.close() };
}

test('a reused keep-alive connection that dies before any answer byte: sent once more, on a new one', async () => {
  const s = await closesReusedConnections();
  const c = new sdk.Client({ addr: `127.0.0.1:${s.port}`, token: null });
  await c.invoke('f');
  const r = await c.invoke('f');
  assert.deepEqual(r.value, {});
  assert.equal(s.requests(), 3, 'the request that met the dead connection, then its retry');
  assert.equal(s.connections(), 2);
  c.close();
  s.close();
});

test('a new connection that dies after the request was sent: not retried', async () => {
  const server = net.createServer((socket) => {
    socket.once('data', () => socket.destroy());
    socket.on('error', () => {});
  });
  const port = await listen(server);
  let connections = 0;
  server.on('connection', () => (connections += 1));
  const c = new sdk.Client({ addr: `127.0.0.1:${port}`, token: null, retries: 3 });
  await assert.rejects(c.invoke('f'), (e) => {
    assert.ok(e instanceof sdk.ConnectionError, e.name);
    assert.equal(e.sent, true);
    assert.match(e.message, /may have run/);
    return true;
  });
  assert.equal(connections, 1);
  c.close();
  server.close();
});

test('addresses', () => {
  const p = sdk.parseAddr;
  assert.equal(p('127.0.0.1:7700').href, 'http://127.0.0.1:7700');
  assert.equal(p('localhost').href, 'http://localhost:7700');
  assert.equal(p('http://10.0.0.5:8000/').href, 'http://10.0.0.5:8000');
  assert.equal(p('https://hearth.example').href, 'https://hearth.example:7700');
  assert.equal(p('https://hearth.example:443').port, 443);
  assert.equal(p('http://hearth.example:80').port, 80);
  assert.equal(p('[::1]:7701').hostname, '::1');
  assert.equal(p('[::1]:7701').href, 'http://[::1]:7701');
  assert.equal(p('').href, 'http://127.0.0.1:7700');
  assert.throws(() => p('ftp://x'), TypeError);
  const saved = process.env.HEARTH_ADDR;
  process.env.HEARTH_ADDR = '127.0.0.2:7777';
  try {
    assert.equal(new sdk.Client({ token: null }).address, 'http://127.0.0.2:7777');
    assert.equal(new sdk.Client({ token: null, addr: '127.0.0.3:1' }).address, 'http://127.0.0.3:1');
  } finally {
    if (saved === undefined) delete process.env.HEARTH_ADDR;
    else process.env.HEARTH_ADDR = saved;
  }
});
