'use strict';
// The Node shim's tests: the shared protocol vectors (shims/protocol-vectors.json),
// the codec's value mapping, handler shapes, and the worker end to end (spawned
// with fds 3 and 4 as pipes, as the daemon does), including several calls in
// flight and the user switch at load (which needs root: skipped otherwise).
//
//   node --test shims/node/            (test.js pulls this file in)
//   node --test shims/node/test_protocol.js

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const worker = require('./hearth_worker');
const codec = require('./codec');

const WORKER = path.join(__dirname, 'hearth_worker.js');
const VECTORS = path.join(__dirname, '..', 'protocol-vectors.json');

// ------------------------------------------------------------------ vectors

/**
 * The vector file, with integer literals beyond 2^53 read exactly, as BigInt
 * (JSON.parse would round 18446744073709551615 to a nearby double). The shim
 * decodes such 64-bit values as BigInt too, so they compare equal exactly.
 */
function loadVectors() {
  const text = fs.readFileSync(VECTORS, 'utf8');
  const marked = text.replace(/([:[,]\s*)(-?\d{16,})(?=\s*[,\]}])/g, (_, before, digits) => `${before}"\\u0000int:${digits}"`);
  const data = JSON.parse(marked, (_, value) => {
    if (typeof value === 'string' && value.startsWith('\u0000int:')) {
      const digits = value.slice(5);
      const n = Number(digits);
      return Number.isSafeInteger(n) ? n : BigInt(digits);
    }
    return value;
  });
  assert.equal(data.protocol, worker.PROTOCOL);
  return data.vectors;
}

/** Every message a FrameReader makes of `bytes`, fed `step` bytes at a time. */
function readAll(bytes, step = bytes.length) {
  const messages = [];
  const reader = new worker.FrameReader((m) => messages.push(m));
  for (let i = 0; i < bytes.length; i += step) reader.push(bytes.subarray(i, i + step));
  return { messages, dropped: reader.end() };
}

test('every frame decodes to its meaning', () => {
  const vectors = loadVectors();
  assert.ok(vectors.length >= 14);
  for (const v of vectors) {
    const bytes = Buffer.from(v.hex, 'hex');
    assert.deepEqual(readAll(bytes).messages, [v.message], v.name);
    assert.deepEqual(readAll(bytes, 1).messages, [v.message], `${v.name}, a byte at a time`);
  }
  const ints = vectors.find((v) => v.name === 'invoke_every_json_type').message.payload.ints;
  assert.ok(ints.includes(18446744073709551615n) && ints.includes(-9223372036854775808n));
});

test('all the vectors in one stream, in any chunking', () => {
  const vectors = loadVectors();
  const stream = Buffer.concat(vectors.map((v) => Buffer.from(v.hex, 'hex')));
  for (const step of [1, 3, 7, 64, stream.length]) {
    const { messages, dropped } = readAll(stream, step);
    assert.deepEqual(
      messages,
      vectors.map((v) => v.message),
      `step ${step}`,
    );
    assert.equal(dropped, 0);
  }
});

test('worker messages encode to the vector bytes', () => {
  for (const v of loadVectors()) {
    if (v.direction !== 'worker_to_daemon') continue;
    let message = v.message;
    if (v.name === 'loaded') message = { ...message, load_ms: new codec.Float64(message.load_ms) };
    assert.equal(worker.encodeFrame(message).toString('hex'), v.hex, v.name);
  }
  // and the daemon's too: the codec writes the smallest encodings
  for (const v of loadVectors()) {
    assert.equal(worker.encodeFrame(v.message).toString('hex'), v.hex, v.name);
  }
});

test('end of file means closed', () => {
  const { messages, dropped } = readAll(Buffer.from('00000005' + '6162', 'hex'));
  assert.deepEqual(messages, []);
  assert.equal(dropped, 6);
});

test('an oversized frame is refused', () => {
  const reader = new worker.FrameReader(() => assert.fail('no message expected'));
  assert.throws(() => reader.push(Buffer.from('ffffffff', 'hex')), worker.ProtocolError);
  // as soon as the length is known, before the body comes
  const split = new worker.FrameReader(() => {});
  split.push(Buffer.from('04', 'hex'));
  assert.throws(() => split.push(Buffer.from('000001', 'hex')), /over the 67108864 byte limit/);
});

test('a frame that is not a map with a string t is refused', () => {
  const frame = (body) => Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]);
  for (const body of [Buffer.from([0x93, 1, 2, 3]), Buffer.from([0x81, 0xa1, 0x74, 0x01]), Buffer.from([0xc1])]) {
    assert.throws(() => readAll(frame(body)), worker.ProtocolError, body.toString('hex'));
  }
  assert.throws(() => readAll(frame(Buffer.from([0x82, 0xa1, 0x74, 0xa1, 0x78]))), /truncated/);
});

// ------------------------------------------------------------------- values

test('values: integers take the smallest encoding, 64-bit ones come back as BigInt', () => {
  const cases = [
    [0, '00'],
    [-1, 'ff'],
    [1.5, 'cb3ff8000000000000'],
    [2 ** 53, 'cf0020000000000000'],
    [-(2 ** 63), 'd38000000000000000'],
    [2 ** 64, 'cb43f0000000000000'], // over uint64: a float
    [18446744073709551615n, 'cfffffffffffffffff'],
    [-9223372036854775808n, 'd38000000000000000'],
    [5n, '05'],
    [new codec.Float64(2), 'cb4000000000000000'],
  ];
  for (const [value, hex] of cases) assert.equal(codec.encode(value).toString('hex'), hex, String(value));
  assert.equal(codec.decode(Buffer.from('cf001fffffffffffff', 'hex')), 2 ** 53 - 1);
  assert.equal(codec.decode(Buffer.from('cf0020000000000000', 'hex')), 2n ** 53n);
  assert.equal(codec.decode(Buffer.from('d3ffe0000000000001', 'hex')), -(2 ** 53) + 1);
  assert.equal(codec.decode(Buffer.from('d3ffe0000000000000', 'hex')), -(2n ** 53n));
  assert.throws(() => codec.encode(2n ** 64n), codec.EncodeError);
});

test('values: strings, bytes, maps, arrays, nil', () => {
  const value = {
    text: 'héllo ☃ 🔥',
    long: 'é'.repeat(40) + 'x'.repeat(70000),
    bytes: Buffer.from([0, 1, 255]),
    nothing: null,
    list: [1, [2, [3]], {}],
    ext: new codec.Ext(5, Buffer.from('ab')),
  };
  assert.deepEqual(codec.decode(codec.encode(value)), value);
  assert.deepEqual(codec.decode(codec.encode({ u: undefined, a: [undefined] })), { u: null, a: [null] });
  assert.deepEqual(codec.decode(codec.encode(new Uint8Array([7]))), Buffer.from([7]));
  assert.equal(codec.encode('\ud800').toString('hex'), 'a3efbfbd'); // a lone surrogate, as Buffer does
  // Map keys of any type; non-string keys decode as their JSON text
  assert.deepEqual(codec.decode(codec.encode(new Map([[1, 'a'], [true, 'b'], ['k', 'c']]))), { 1: 'a', true: 'b', k: 'c' });
  // "__proto__" is an ordinary key, not the prototype
  const tricky = codec.decode(Buffer.from('81a95f5f70726f746f5f5f81a17801', 'hex'));
  assert.equal(Object.getPrototypeOf(tricky), Object.prototype);
  assert.deepEqual(Object.keys(tricky), ['__proto__']);
  assert.equal(JSON.stringify(tricky), '{"__proto__":{"x":1}}');
  // toJSON (Date) and class instances, as JSON.stringify sees them
  class Point {
    constructor() {
      this.x = 1;
      this.y = 2;
    }
  }
  assert.deepEqual(codec.decode(codec.encode({ when: new Date(0), p: new Point() })), {
    when: '1970-01-01T00:00:00.000Z',
    p: { x: 1, y: 2 },
  });
});

test('values: what cannot be encoded', () => {
  const circular = { a: 1 };
  circular.self = circular;
  for (const bad of [() => 1, Symbol('s'), new Set([1]), Promise.resolve(1), new Float32Array(2), circular, { f() {} }]) {
    assert.throws(() => codec.encode(bad), codec.EncodeError);
  }
  // the encoder is usable after a failure
  assert.equal(codec.encode({ t: 'pong', id: 'p1' }).toString('hex'), '82a174a4706f6e67a26964a27031');
});

// ------------------------------------------------------------ handler shape

test('handler arity', () => {
  assert.equal(worker.takesOneArgument((event) => event), true);
  assert.equal(worker.takesOneArgument(async function (event) {}), true); // eslint-disable-line no-unused-vars
  assert.equal(worker.takesOneArgument((event, context) => context), false);
  assert.equal(worker.takesOneArgument((...args) => args), false);
  assert.equal(worker.takesOneArgument(() => 1), false);
  // Function.length stops at the first default or rest parameter
  assert.equal(worker.takesOneArgument((event, { debug } = {}) => debug), true);
});

test('entry resolution', () => {
  const dir = makeFunctionDir({ 'main.cjs': 'exports.handler = () => 1;', 'a/b.js': 'exports.h = () => 1;' });
  assert.deepEqual(worker.resolveEntry(dir, 'main.handler'), { file: path.join(dir, 'main.cjs'), moduleName: 'main', attr: 'handler' });
  assert.equal(worker.resolveEntry(dir, 'a.b.h').file, path.join(dir, 'a', 'b.js'));
  assert.throws(() => worker.resolveEntry(dir, 'nomodule.handler'), { code: 'MODULE_NOT_FOUND' });
  for (const bad of ['handler', 'main.', '.handler', 'a..b.handler', '../x.handler']) {
    assert.throws(() => worker.resolveEntry(dir, bad), /must look like module.handler/, bad);
  }
  assert.throws(() => worker.findHandler({ other: 1 }, 'main', 'handler'), worker.EntryNotFound);
  assert.throws(() => worker.findHandler({ handler: 'text' }, 'main', 'handler'), /main.handler is a string, not a function/);
  const fromDefault = worker.findHandler({ default: { handler() {} } }, 'main', 'handler');
  assert.equal(typeof fromDefault.handler, 'function');
});

test("an invoke's answer waits until what the handler printed is flushed", async () => {
  const frames = [];
  const flushes = [];
  // A log stream with bytes still queued, flushed when the test says so.
  const log = { writableLength: 10, destroyed: false, write: (chunk, done) => flushes.push(done) };
  const idle = { writableLength: 0, destroyed: false, write: () => assert.fail('nothing to flush') };
  let exited = null;
  const w = new worker.Worker((frame) => frames.push(frame), (code) => (exited = code), () => [log, idle]);
  w.fn = new worker.LoadedFunction({ function: 'f', version: 1 }, null, (event) => event);
  w.enqueue({ t: 'invoke', id: 'r1', deadline_ms: 0, payload: 'one' });
  w.enqueue({ t: 'ping', id: 'p1' }); // a ping does not wait for answers
  const messages = () => frames.map((f) => worker.decodeBody(f, 4));
  assert.deepEqual(messages(), [{ t: 'pong', id: 'p1' }]);
  assert.equal(flushes.length, 1);
  w.enqueue({ t: 'shutdown', id: 's1' }); // waits for r1's answer to be out
  assert.equal(exited, null);
  flushes[0]();
  await new Promise(setImmediate);
  assert.deepEqual(messages(), [
    { t: 'pong', id: 'p1' },
    { t: 'result', id: 'r1', value: 'one' },
  ]);
  assert.equal(exited, 0);
  // with nothing queued the answer goes out at once
  const w2 = new worker.Worker((frame) => frames.push(frame), () => {}, () => [idle]);
  w2.fn = w.fn;
  w2.enqueue({ t: 'invoke', id: 'r2', deadline_ms: 0, payload: 'two' });
  assert.deepEqual(worker.decodeBody(frames[2], 4), { t: 'result', id: 'r2', value: 'two' });
});

// --------------------------------------------------------------- end to end

const dirs = [];
const children = [];
test.after(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(); // left by a failed test
});

/** A function's code directory holding `files` (name -> text). */
function makeFunctionDir(files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-node-shim-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

/** The environment the daemon gives a worker, and nothing else. */
function workerEnv() {
  const tmp = os.tmpdir();
  return {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    LANG: 'C.UTF-8',
    HOME: tmp,
    TMPDIR: tmp,
    HEARTH_PROTOCOL: '1',
    HEARTH_FUNCTION: 'hello',
    HEARTH_VERSION: '1',
  };
}

/**
 * Spawn the worker with fds 3 (to it) and 4 (from it) as pipes; `prefix` is a
 * command that execs it (setpriv), `options` more spawn options (uid, gid).
 */
function startWorker({ prefix = [], options = {} } = {}) {
  const command = [...prefix, process.execPath, WORKER];
  const child = spawn(command[0], command.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
    env: workerEnv(),
    ...options,
  });
  children.push(child);
  const inbox = [];
  const waiting = [];
  const reader = new worker.FrameReader((message) => {
    if (waiting.length) waiting.shift()(message);
    else inbox.push(message);
  });
  child.stdio[4].on('data', (chunk) => reader.push(chunk));
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const w = {
    child,
    exited,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    send(message) {
      child.stdio[3].write(worker.encodeFrame(message));
    },
    /** The next message from the worker (fails after `ms`). */
    next(ms = 15000) {
      if (inbox.length) return Promise.resolve(inbox.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no message from the worker in ${ms} ms; stderr:\n${stderr}`)), ms);
        waiting.push((message) => {
          clearTimeout(timer);
          resolve(message);
        });
      });
    },
    async request(message) {
      w.send(message);
      return w.next();
    },
    /** Close fd 3 (end of file for the worker) and wait for its exit. */
    async close() {
      child.stdio[3].end();
      return exited;
    },
  };
  return w;
}

/** A worker that has sent `ready` and loaded `entry` from a directory of `files`. */
async function loadedWorker(files, entry = 'main.handler', load = {}) {
  const dir = makeFunctionDir(files);
  const w = startWorker();
  const ready = await w.next();
  assert.equal(ready.t, 'ready');
  const loaded = await w.request({
    t: 'load',
    id: 'load',
    dir,
    entry,
    function: 'hello',
    version: 3,
    timeout_ms: 3000,
    memory_mb: 128,
    ...load,
  });
  assert.deepEqual(Object.keys(loaded), ['t', 'id', 'load_ms'], JSON.stringify(loaded));
  assert.equal(loaded.t, 'loaded');
  assert.equal(loaded.id, 'load');
  w.dir = dir;
  return w;
}

let invokes = 0;
function invoke(w, payload, deadlineMs = Date.now() + 60000) {
  invokes += 1;
  return w.request({ t: 'invoke', id: `r${invokes}`, deadline_ms: deadlineMs, payload });
}

test('e2e: ready, then a one-parameter CommonJS handler', async () => {
  const w = startWorker();
  const ready = await w.next();
  assert.deepEqual(ready, {
    t: 'ready',
    protocol: 1,
    runtime: 'node',
    runtime_version: process.versions.node,
    pid: w.child.pid,
  });
  const dir = makeFunctionDir({
    'main.js': 'exports.handler = function (event) { return { greeting: `Hello, ${event.name}!`, args: arguments.length, cwd: process.cwd() }; };',
  });
  const loaded = await w.request({ t: 'load', id: 'l1', dir, entry: 'main.handler', function: 'hello', version: 1, timeout_ms: 3000, memory_mb: 128 });
  assert.equal(loaded.t, 'loaded');
  assert.equal(typeof loaded.load_ms, 'number');
  const result = await w.request({ t: 'invoke', id: 'r1', deadline_ms: 1800000000000, payload: { name: 'Ada' } });
  assert.deepEqual(result, { t: 'result', id: 'r1', value: { greeting: 'Hello, Ada!', args: 1, cwd: fs.realpathSync(dir) } });
  assert.deepEqual(await w.request({ t: 'ping', id: 'p1' }), { t: 'pong', id: 'p1' });
  assert.deepEqual(await w.close(), { code: 0, signal: null });
});

test('e2e: a two-parameter handler gets the context', async () => {
  const w = await loadedWorker({
    'main.js': `
      exports.handler = function (event, context) {
        return {
          args: arguments.length,
          requestId: context.requestId,
          awsRequestId: context.awsRequestId,
          functionName: context.functionName,
          functionVersion: context.functionVersion,
          memoryLimitInMB: context.memoryLimitInMB,
          deadlineMs: context.deadlineMs,
          remaining: context.getRemainingTimeInMillis(),
          self: this === module.exports,
        };
      };`,
  });
  const deadline = Date.now() + 5000;
  const result = await w.request({ t: 'invoke', id: 'ctx-1', deadline_ms: deadline, payload: null });
  const { remaining, ...rest } = result.value;
  assert.deepEqual(rest, {
    args: 2,
    requestId: 'ctx-1',
    awsRequestId: 'ctx-1',
    functionName: 'hello',
    functionVersion: 3,
    memoryLimitInMB: 128,
    deadlineMs: deadline,
    self: true,
  });
  assert.ok(remaining > 3000 && remaining <= 5000, String(remaining));
  const late = await w.request({ t: 'invoke', id: 'ctx-2', deadline_ms: Date.now() - 10, payload: null });
  assert.equal(late.value.remaining, 0);
  assert.equal((await w.close()).code, 0);
});

test('e2e: an async handler (in a .cjs file)', async () => {
  const w = await loadedWorker({
    'main.cjs': 'exports.handler = async (event) => { await new Promise((r) => setTimeout(r, 20)); return { doubled: event.n * 2, big: 2n ** 60n }; };',
  });
  assert.deepEqual((await invoke(w, { n: 21 })).value, { doubled: 42, big: 2n ** 60n });
  assert.equal((await w.close()).code, 0);
});

test('e2e: an ES module (.mjs) with export async function handler', async () => {
  const w = await loadedWorker({
    'main.mjs': `
      import { readFileSync } from 'node:fs';
      export async function handler(event, context) {
        return { esm: true, id: context.requestId, pkg: readFileSync(new URL('./data.txt', import.meta.url), 'utf8') };
      }`,
    'data.txt': 'esm data',
  });
  const reply = await w.request({ t: 'invoke', id: 'esm-1', deadline_ms: Date.now() + 60000, payload: {} });
  assert.deepEqual(reply, { t: 'result', id: 'esm-1', value: { esm: true, id: 'esm-1', pkg: 'esm data' } });
  assert.equal((await w.close()).code, 0);
});

test('e2e: a .js ES module under "type": "module", a dotted module path, a default export object', async () => {
  const w = await loadedWorker(
    {
      'package.json': '{"type": "module"}',
      'lib/app.js': 'export default { handler: (event) => ({ from: "default", event }) };',
    },
    'lib.app.handler',
  );
  assert.deepEqual((await invoke(w, [1, 2])).value, { from: 'default', event: [1, 2] });
  assert.equal((await w.close()).code, 0);
});

test('e2e: a handler that throws: an error reply, and the worker keeps serving', async () => {
  const w = await loadedWorker({
    'main.js': `
      function check(event) {
        if (event.fail) throw new TypeError('bad input');
        return 'fine';
      }
      exports.handler = async (event) => {
        if (event.reject) throw new RangeError('async trouble');
        if (event.string) throw 'just a string';
        return check(event);
      };`,
  });
  const failed = await invoke(w, { fail: true });
  assert.equal(failed.t, 'error');
  assert.equal(failed.kind, 'TypeError');
  assert.equal(failed.message, 'bad input');
  assert.match(failed.traceback, /^TypeError: bad input\n\s+at check \(.*main\.js:3:/);
  assert.doesNotMatch(failed.traceback, /hearth_worker|node:/);
  const rejected = await invoke(w, { reject: true });
  assert.deepEqual([rejected.kind, rejected.message], ['RangeError', 'async trouble']);
  const thrownString = await invoke(w, { string: true });
  assert.deepEqual([thrownString.kind, thrownString.message, thrownString.traceback], ['Error', 'just a string', '']);
  assert.deepEqual(await invoke(w, {}), { t: 'result', id: `r${invokes}`, value: 'fine' });
  assert.equal((await w.close()).code, 0);
});

// ------------------------------------------------------------ error codes

const RAISES = `
  const { HearthError, HearthInvokeError } = require('hearth');
  class NotFound extends HearthError {
    constructor(what) { super('NOT_FOUND', \`no \${what}\`); }
  }
  function find(event) {
    throw new HearthError(event.code, event.message);
  }
  exports.handler = async (event, context) => {
    switch (event.do) {
      case 'throw': return find(event);
      case 'reject': await null; throw new context.HearthError(event.code);
      case 'subclass': throw new NotFound('program 42');
      case 'mutated': { const e = new HearthError('FINE', 'changed below'); e.code = event.code; throw e; }
      case 'plain': { const e = new Error('not hearth\\'s'); e.code = 'NOT_FOUND'; throw e; }
      case 'invoke_error': throw new HearthInvokeError({ code: 'timeout', message: 'slow' });
      case 'same': return [HearthError === context.HearthError, HearthInvokeError === context.HearthInvokeError,
                           require.resolve('hearth') === require.resolve('hearth'), Object.keys(require('hearth')).sort()];
      default: return 'fine';
    }
  };`;

test('e2e: a HearthError sends its code in the error frame, with message and traceback', async () => {
  const w = await loadedWorker({ 'main.js': RAISES });
  const failed = await invoke(w, { do: 'throw', code: 'NOT_FOUND', message: 'no program 42' });
  assert.deepEqual(Object.keys(failed), ['t', 'id', 'kind', 'message', 'traceback', 'code']);
  assert.deepEqual([failed.t, failed.kind, failed.message, failed.code], ['error', 'HearthError', 'no program 42', 'NOT_FOUND']);
  assert.match(failed.traceback, /^HearthError: no program 42\n\s+at find \(.*main\.js:7:/);
  assert.doesNotMatch(failed.traceback, /hearth_worker|hearth\.js|node:/);
  const longest = `z${'Az09_.-'.repeat(9)}`;
  assert.equal((await invoke(w, { do: 'throw', code: longest })).code, longest);
  const rejected = await invoke(w, { do: 'reject', code: 'GONE' });
  assert.deepEqual([rejected.kind, rejected.message, rejected.code], ['HearthError', '', 'GONE']);
  const sub = await invoke(w, { do: 'subclass' });
  assert.deepEqual([sub.kind, sub.message, sub.code], ['NotFound', 'no program 42', 'NOT_FOUND']);
  assert.match(sub.traceback, /^NotFound: no program 42\n/);
  assert.deepEqual((await invoke(w, { do: 'same' })).value, [true, true, true, ['HEARTH_ERROR', 'HearthError', 'HearthInvokeError']]);
  assert.equal((await invoke(w, {})).value, 'fine');
  assert.equal((await w.close()).code, 0);
});

test('e2e: an invalid error code is sent as a plain error saying why', async () => {
  const w = await loadedWorker({ 'main.js': RAISES });
  for (const [code, why] of [
    ['not found', 'it contains " "'],
    ['9LIVES', 'it does not start with a letter'],
    ['-X', 'it does not start with a letter'],
    ['A'.repeat(65), 'it is 65 characters long'],
    ['caf\u00e9', 'it contains "\u00e9"'],
  ]) {
    const failed = await invoke(w, { do: 'throw', code, message: 'no program 42' });
    assert.equal(failed.t, 'error', code);
    assert.ok(!('code' in failed), code);
    assert.equal(failed.kind, 'HearthError', code);
    assert.ok(failed.message.startsWith('invalid error code '), failed.message);
    assert.ok(failed.message.includes(why), `${code}: ${failed.message}`);
    assert.ok(failed.message.includes('[A-Za-z][A-Za-z0-9_.-]*'), failed.message);
    assert.ok(failed.message.endsWith('; its message: no program 42'), failed.message);
    assert.match(failed.traceback, /at find \(.*main\.js:7:/);
  }
  // The constructor refuses what is not a non-empty string...
  for (const code of [404, '', null]) {
    const failed = await invoke(w, { do: 'throw', code });
    assert.ok(!('code' in failed), String(code));
    assert.equal(failed.kind, 'TypeError');
    assert.match(failed.message, /^HearthError: the error code/);
  }
  // ...and a code set afterwards is checked when it is sent.
  const mutated = await invoke(w, { do: 'mutated', code: 404 });
  assert.ok(!('code' in mutated));
  assert.equal(mutated.message.split(':')[0], 'invalid error code 404 (it is a number, not a string)');
  assert.ok(mutated.message.endsWith('; its message: changed below'), mutated.message);
  // Errors that are not hearth's keep any code property to themselves.
  const plain = await invoke(w, { do: 'plain' });
  assert.deepEqual([plain.kind, plain.message, 'code' in plain], ['Error', "not hearth's", false]);
  const nested = await invoke(w, { do: 'invoke_error' });
  assert.deepEqual([nested.kind, nested.message, 'code' in nested], ['HearthInvokeError', 'slow', false]);
  assert.equal((await w.close()).code, 0);
});

test("e2e: import { HearthError } from 'hearth' in an ES module", async () => {
  const w = await loadedWorker({
    'main.mjs': `
      import { HearthError } from 'hearth';
      import hearth from 'hearth';
      export async function handler(event, context) {
        if (event.which) return [HearthError === context.HearthError, hearth.HearthError === HearthError];
        throw new HearthError('NOT_FOUND', 'no program 42');
      }`,
  });
  assert.deepEqual((await invoke(w, { which: true })).value, [true, true]);
  const failed = await invoke(w, {});
  assert.deepEqual([failed.kind, failed.message, failed.code], ['HearthError', 'no program 42', 'NOT_FOUND']);
  assert.match(failed.traceback, /main\.mjs:6:/);
  assert.equal((await w.close()).code, 0);
});

test("e2e: an ES module that the entry imports may import 'hearth' where Node has in-thread hooks", async () => {
  const files = {
    'main.mjs': "export { handler } from './lib.mjs';",
    'lib.mjs': "import { HearthError } from 'hearth';\nexport const handler = () => { throw new HearthError('DEEP', 'from lib'); };",
  };
  if (typeof require('node:module').registerHooks === 'function') {
    const w = await loadedWorker(files);
    assert.deepEqual((await invoke(w, {})).code, 'DEEP');
    assert.equal((await w.close()).code, 0);
    return;
  }
  // Older Node: the hook is only registered when the entry imports 'hearth'
  // (it costs a thread); the load error says so.
  const dir = makeFunctionDir(files);
  const w = startWorker();
  assert.equal((await w.next()).t, 'ready');
  const reply = await w.request({ t: 'load', id: 'load', dir, entry: 'main.handler', function: 'hello', version: 1, timeout_ms: 3000, memory_mb: 128 });
  assert.equal(reply.t, 'error');
  assert.match(reply.message, /Cannot find package 'hearth'.*import it in main\.mjs too, or use context\.HearthError/s);
  assert.equal((await w.close()).code, 0);
});

test('e2e: a function that ships its own node_modules/hearth keeps it, in require and import', async () => {
  const own = {
    'node_modules/hearth/package.json': '{"name": "hearth", "version": "9.9.9", "main": "index.js"}',
    'node_modules/hearth/index.js': 'exports.mine = "the function\'s own";',
  };
  const cjs = await loadedWorker({
    ...own,
    'main.js': `
      const hearth = require('hearth');
      exports.handler = (event, context) => {
        if (event.which) return [hearth.mine, 'HearthError' in hearth];
        throw new context.HearthError('NOT_FOUND', 'no program 42');
      };`,
  });
  assert.deepEqual((await invoke(cjs, { which: true })).value, ["the function's own", false]);
  assert.equal((await invoke(cjs, {})).code, 'NOT_FOUND'); // context.HearthError still works
  assert.equal((await cjs.close()).code, 0);
  const esm = await loadedWorker({
    ...own,
    'main.mjs': `
      import hearth from 'hearth';
      export const handler = () => [hearth.mine, 'HearthError' in hearth];`,
  });
  assert.deepEqual((await invoke(esm, {})).value, ["the function's own", false]);
  assert.equal((await esm.close()).code, 0);
});

test('e2e: a load that throws a HearthError is a load error without a code', async () => {
  const dir = makeFunctionDir({ 'main.js': "const { HearthError } = require('hearth'); throw new HearthError('AT_LOAD', 'too early');" });
  const w = startWorker();
  assert.equal((await w.next()).t, 'ready');
  const reply = await w.request({ t: 'load', id: 'load', dir, entry: 'main.handler', function: 'hello', version: 1, timeout_ms: 3000, memory_mb: 128 });
  assert.deepEqual([reply.t, reply.kind, reply.message, 'code' in reply], ['error', 'HearthError', 'too early', false]);
  assert.equal((await w.close()).code, 0);
});

test('e2e: an exception thrown from a callback fails the running invoke only', async () => {
  const w = await loadedWorker({
    'main.js': `
      exports.handler = (event) => {
        if (!event.crash) return 'alive';
        return new Promise(() => { setTimeout(() => { throw new Error('from a timer'); }, 5); });
      };`,
  });
  const crashed = await invoke(w, { crash: true });
  assert.deepEqual([crashed.t, crashed.kind, crashed.message], ['error', 'Error', 'from a timer']);
  assert.equal((await invoke(w, {})).value, 'alive');
  assert.match(w.stderr, /uncaught exception while a request ran; it fails that request/);
  assert.equal((await w.close()).code, 0);
});

test('e2e: a handler that logs a lot while it returns', async () => {
  const w = await loadedWorker({
    'main.js': `
      exports.handler = (event) => {
        for (let i = 0; i < event.lines; i++) console.log('line ' + i + ' ' + 'x'.repeat(60));
        console.error('to stderr');
        return { rows: Array.from({ length: 1000 }, (_, i) => ({ i })) };
      };`,
  });
  const result = await invoke(w, { lines: 20000 });
  assert.equal(result.t, 'result');
  assert.equal(result.value.rows.length, 1000);
  assert.deepEqual(result.value.rows[999], { i: 999 });
  assert.deepEqual(await w.request({ t: 'ping', id: 'after-logs' }), { t: 'pong', id: 'after-logs' });
  assert.equal((await w.close()).code, 0);
  const lines = w.stdout.split('\n');
  assert.equal(lines.length, 20001);
  assert.equal(lines[19999], 'line 19999 ' + 'x'.repeat(60));
  assert.match(w.stderr, /to stderr/);
});

test('e2e: an 8 MiB string payload round trip', async () => {
  const w = await loadedWorker({ 'main.js': 'exports.handler = (event) => ({ echo: event.body, length: event.body.length });' });
  const body = 'abcdefgh'.repeat(1024 * 1024) + 'é🔥';
  const result = await invoke(w, { body });
  assert.equal(result.value.length, body.length);
  assert.ok(result.value.echo === body);
  assert.equal((await w.close()).code, 0);
});

test('e2e: a handler reads a file shipped beside it through __dirname', async () => {
  const w = await loadedWorker({
    'main.js': `
      const fs = require('fs');
      const path = require('path');
      const { greet } = require('./lib/greet');
      const template = fs.readFileSync(path.join(__dirname, 'template.txt'), 'utf8');
      exports.handler = (event) => greet(template, event.name);`,
    'lib/greet.js': 'exports.greet = (template, name) => template.replace("{name}", name);',
    'template.txt': 'Hi, {name}!',
  });
  assert.equal((await invoke(w, { name: 'Ada' })).value, 'Hi, Ada!');
  assert.equal((await w.close()).code, 0);
});

test('e2e: results that cannot be sent, bytes and BigInt that can', async () => {
  const w = await loadedWorker({
    'main.js': `
      exports.handler = (event) => {
        if (event === 'fn') return { f: () => 1 };
        if (event === 'set') return new Set([1]);
        if (event === 'undefined') return undefined;
        return { bytes: Buffer.from('hi'), big: 18446744073709551615n };
      };`,
  });
  for (const what of ['fn', 'set']) {
    const reply = await invoke(w, what);
    assert.equal(reply.kind, 'ResultNotSerializable', what);
    assert.match(reply.message, /return JSON-like data/);
    assert.equal(reply.traceback, '');
  }
  assert.deepEqual((await invoke(w, 'undefined')).value, null);
  assert.deepEqual((await invoke(w, 'ok')).value, { bytes: Buffer.from('hi'), big: 18446744073709551615n });
  assert.equal((await w.close()).code, 0);
});

test('e2e: load errors', async () => {
  const cases = [
    [{ 'main.js': 'exports.other = () => 1;' }, 'main.handler', 'EntryNotFound', /no export named "handler"/],
    [{ 'main.js': 'exports.handler = 42;' }, 'main.handler', 'EntryNotFound', /main.handler is a number, not a function/],
    [{ 'main.js': 'exports.handler = (;' }, 'main.handler', 'SyntaxError', /Unexpected token/],
    [{ 'main.mjs': 'export const handler = ;' }, 'main.handler', 'SyntaxError', /Unexpected token/],
    [{ 'main.js': 'throw new RangeError("at import");' }, 'main.handler', 'RangeError', /at import/],
    [{ 'other.js': '' }, 'main.handler', 'Error', /Cannot find module 'main'/],
  ];
  for (const [files, entry, kind, message] of cases) {
    const dir = makeFunctionDir(files);
    const w = startWorker();
    await w.next();
    const reply = await w.request({ t: 'load', id: 'load', dir, entry, function: 'f', version: 1, timeout_ms: 1000, memory_mb: 64 });
    assert.deepEqual(Object.keys(reply), ['t', 'id', 'kind', 'message', 'traceback']);
    assert.equal(reply.t, 'error');
    assert.equal(reply.kind, kind, JSON.stringify(reply));
    assert.match(reply.message, message);
    if (kind === 'EntryNotFound') assert.equal(reply.traceback, '');
    if (kind === 'SyntaxError' || kind === 'RangeError') assert.match(reply.traceback, new RegExp(kind));
    w.child.kill();
    await w.exited;
  }
});

test('e2e: protocol errors, ignored reserved messages, shutdown', async () => {
  const w = startWorker();
  await w.next();
  const early = await w.request({ t: 'invoke', id: 'early', deadline_ms: 0, payload: null });
  assert.deepEqual(early, { t: 'error', id: 'early', kind: 'ProtocolError', message: 'invoke before load', traceback: '' });
  const unknown = await w.request({ t: 'launch', id: 'x1' });
  assert.equal(unknown.kind, 'ProtocolError');
  assert.match(unknown.message, /unknown message type "launch"/);
  w.send({ t: 'cancel', id: 'c1' });
  w.send({ t: 'call_result', id: 'c2', ok: true, value: 1, error: null });
  assert.deepEqual(await w.request({ t: 'ping', id: 'p9', extra: 'ignored' }), { t: 'pong', id: 'p9' });
  w.send({ t: 'shutdown', id: 's1' });
  assert.deepEqual(await w.exited, { code: 0, signal: null });
});

test('e2e: shutdown waits for the running invoke', async () => {
  const w = await loadedWorker({
    'main.js': 'exports.handler = async () => { await new Promise((r) => setTimeout(r, 100)); return "done"; }; setInterval(() => {}, 1000);',
  });
  w.send({ t: 'invoke', id: 'slow', deadline_ms: Date.now() + 60000, payload: null });
  w.send({ t: 'shutdown', id: 's1' });
  assert.deepEqual(await w.next(), { t: 'result', id: 'slow', value: 'done' });
  assert.deepEqual(await w.exited, { code: 0, signal: null }); // despite the interval
});

test('e2e: a broken channel or a stray rejection ends the worker with an error', async () => {
  const w = startWorker();
  await w.next();
  w.child.stdio[3].write(Buffer.from('ffffffff', 'hex'));
  assert.equal((await w.exited).code, 1);
  assert.match(w.stderr, /protocol channel broken: frame of 4294967295 bytes/);

  const w2 = await loadedWorker({
    'main.js': 'exports.handler = () => { setTimeout(() => Promise.reject(new Error("later")), 10); return "returned"; };',
  });
  assert.equal((await invoke(w2, null)).value, 'returned');
  const { code } = await w2.exited;
  assert.notEqual(code, 0);
  assert.match(w2.stderr, /unhandled promise rejection outside any request; exiting:\nError: later/);
});

test('e2e: the worker refuses to run without fds 3 and 4', async () => {
  const child = spawn(process.execPath, [WORKER], { stdio: ['ignore', 'ignore', 'pipe'], env: workerEnv() });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
  const code = await new Promise((resolve) => child.on('close', resolve));
  assert.equal(code, 70);
  assert.match(stderr, /fd 3 is not open/);
});

// ------------------------------------------------------ calls in flight

/** Send several frames in one write, as a daemon that pipelines them may. */
function sendAll(w, messages) {
  w.child.stdio[3].write(Buffer.concat(messages.map((m) => worker.encodeFrame(m))));
}

/** The next `n` messages from the worker. */
async function nextN(w, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await w.next());
  return out;
}

// A handler that waits `event.wait` ms, then returns what it saw; it counts the
// calls running when it starts, which proves they overlap.
const OVERLAPPING = `
  let running = 0;
  exports.handler = async (event, context) => {
    running += 1;
    const seen = running;
    await new Promise((resolve) => setTimeout(resolve, event.wait));
    running -= 1;
    if (event.reject) throw new RangeError('call ' + event.n + ' failed');
    if (event.throwLater) {
      setTimeout(() => { throw new TypeError('uncaught in call ' + event.n); }, 1);
      return new Promise(() => {}); // never settles: the uncaught exception must fail it
    }
    if (event.rejectLater) {
      setTimeout(() => { Promise.reject(new SyntaxError('unhandled in call ' + event.n)); }, 1);
      return new Promise(() => {});
    }
    return { n: event.n, seen, id: context.requestId, deadline: context.deadlineMs };
  };`;

test('e2e: three invokes back to back run at once and are answered as they finish', async () => {
  const w = await loadedWorker({ 'main.js': OVERLAPPING });
  const base = Date.now() + 60000;
  sendAll(w, [
    { t: 'invoke', id: 'a', deadline_ms: base + 1, payload: { n: 1, wait: 300 } },
    { t: 'invoke', id: 'b', deadline_ms: base + 2, payload: { n: 2, wait: 150 } },
    { t: 'invoke', id: 'c', deadline_ms: base + 3, payload: { n: 3, wait: 10 } },
  ]);
  assert.deepEqual(await nextN(w, 3), [
    { t: 'result', id: 'c', value: { n: 3, seen: 3, id: 'c', deadline: base + 3 } },
    { t: 'result', id: 'b', value: { n: 2, seen: 2, id: 'b', deadline: base + 2 } },
    { t: 'result', id: 'a', value: { n: 1, seen: 1, id: 'a', deadline: base + 1 } },
  ]);
  // one frame at a time too, and a ping is answered while they run
  for (const [id, wait] of [['d', 200], ['e', 100], ['f', 20]]) {
    w.send({ t: 'invoke', id, deadline_ms: base, payload: { n: id, wait } });
  }
  w.send({ t: 'ping', id: 'p1' });
  assert.deepEqual(
    (await nextN(w, 4)).map((m) => [m.t, m.id, m.value && m.value.seen]),
    [
      ['pong', 'p1', undefined],
      ['result', 'f', 3],
      ['result', 'e', 2],
      ['result', 'd', 1],
    ],
  );
  assert.equal((await w.close()).code, 0);
});

test('e2e: among calls in flight, only the one that fails is an error', async () => {
  const w = await loadedWorker({ 'main.js': OVERLAPPING });
  const deadline = Date.now() + 60000;
  for (const how of ['reject', 'throwLater', 'rejectLater']) {
    sendAll(w, [
      { t: 'invoke', id: `${how}-1`, deadline_ms: deadline, payload: { n: 1, wait: 150 } },
      { t: 'invoke', id: `${how}-2`, deadline_ms: deadline, payload: { n: 2, wait: 50, [how]: true } },
      { t: 'invoke', id: `${how}-3`, deadline_ms: deadline, payload: { n: 3, wait: 100 } },
    ]);
    const byId = Object.fromEntries((await nextN(w, 3)).map((m) => [m.id, m]));
    assert.deepEqual(byId[`${how}-1`].value.n, 1, how);
    assert.deepEqual(byId[`${how}-3`].value.n, 3, how);
    const failed = byId[`${how}-2`];
    const [kind, message] = {
      reject: ['RangeError', 'call 2 failed'],
      throwLater: ['TypeError', 'uncaught in call 2'],
      rejectLater: ['SyntaxError', 'unhandled in call 2'],
    }[how];
    assert.deepEqual([failed.t, failed.kind, failed.message], ['error', kind, message], how);
    assert.match(failed.traceback, new RegExp(`^${kind}: ${message}\\n\\s+at .*main\\.js:`), how);
  }
  assert.match(w.stderr, /uncaught exception while a request ran; it fails that request \(throwLater-2\):\nTypeError: uncaught in call 2/);
  assert.match(w.stderr, /unhandled promise rejection while a request ran; it fails that request \(rejectLater-2\):/);
  assert.equal((await invoke(w, { n: 4, wait: 1 })).value.seen, 1); // still serving
  assert.equal((await w.close()).code, 0);
});

test('e2e: an uncaught exception that belongs to no call fails every call in flight', async () => {
  // The interval was set at load time: its callback runs in no call's context.
  const w = await loadedWorker({
    'main.js': `
      let crash = false;
      setInterval(() => { if (crash) { crash = false; throw new Error('from the load-time timer'); } }, 5).unref();
      exports.handler = async (event) => {
        if (event.crash) crash = true;
        await new Promise((resolve) => setTimeout(resolve, event.wait));
        return 'finished';
      };`,
  });
  const deadline = Date.now() + 60000;
  sendAll(w, [
    { t: 'invoke', id: 'x1', deadline_ms: deadline, payload: { wait: 2000 } },
    { t: 'invoke', id: 'x2', deadline_ms: deadline, payload: { wait: 2000, crash: true } },
  ]);
  const replies = await nextN(w, 2);
  assert.deepEqual(
    replies.map((m) => [m.t, m.id, m.message]).sort(),
    [
      ['error', 'x1', 'from the load-time timer'],
      ['error', 'x2', 'from the load-time timer'],
    ],
  );
  assert.match(w.stderr, /uncaught exception from code of none of the 2 requests in flight; it fails them all \(x1, x2\)/);
  assert.equal((await invoke(w, { wait: 1 })).value, 'finished'); // the late settlements are dropped
  assert.equal((await w.close()).code, 0);
});

test('e2e: the call that was alone when calls began to overlap is not told apart', async () => {
  // Async context is tracked from the first call that starts while another
  // runs: an uncaught exception of that other one names no call.
  const w = await loadedWorker({ 'main.js': OVERLAPPING });
  const deadline = Date.now() + 60000;
  sendAll(w, [
    { t: 'invoke', id: 'first', deadline_ms: deadline, payload: { n: 1, wait: 20, throwLater: true } },
    { t: 'invoke', id: 'second', deadline_ms: deadline, payload: { n: 2, wait: 2000 } },
  ]);
  assert.deepEqual(
    (await nextN(w, 2)).map((m) => [m.t, m.id, m.message]).sort(),
    [
      ['error', 'first', 'uncaught in call 1'],
      ['error', 'second', 'uncaught in call 1'],
    ],
  );
  // from then on they are
  sendAll(w, [
    { t: 'invoke', id: 'third', deadline_ms: deadline, payload: { n: 3, wait: 20, throwLater: true } },
    { t: 'invoke', id: 'fourth', deadline_ms: deadline, payload: { n: 4, wait: 100 } },
  ]);
  assert.deepEqual(
    (await nextN(w, 2)).map((m) => [m.t, m.id]),
    [
      ['error', 'third'],
      ['result', 'fourth'],
    ],
  );
  assert.equal((await w.close()).code, 0);
});

test('e2e: shutdown and end of input wait for every call in flight', async () => {
  for (const how of ['shutdown', 'eof']) {
    const w = await loadedWorker({ 'main.js': OVERLAPPING + '\nsetInterval(() => {}, 1000);' });
    const deadline = Date.now() + 60000;
    sendAll(w, [
      { t: 'invoke', id: 'q1', deadline_ms: deadline, payload: { n: 1, wait: 200 } },
      { t: 'invoke', id: 'q2', deadline_ms: deadline, payload: { n: 2, wait: 100 } },
      { t: 'invoke', id: 'q3', deadline_ms: deadline, payload: { n: 3, wait: 10 } },
    ]);
    if (how === 'shutdown') {
      w.send({ t: 'shutdown', id: 's1' });
      w.send({ t: 'invoke', id: 'too-late', deadline_ms: deadline, payload: { n: 4, wait: 1 } }); // not taken
    } else {
      w.child.stdio[3].end();
    }
    assert.deepEqual(
      (await nextN(w, 3)).map((m) => [m.t, m.id]),
      [
        ['result', 'q3'],
        ['result', 'q2'],
        ['result', 'q1'],
      ],
      how,
    );
    assert.deepEqual(await w.exited, { code: 0, signal: null }, how);
  }
});

test('e2e: a load holds back the invokes sent right after it', async () => {
  const dir = makeFunctionDir({ 'main.mjs': 'await new Promise((r) => setTimeout(r, 50));\nexport const handler = (event) => ({ got: event });' });
  const w = startWorker();
  await w.next();
  sendAll(w, [
    { t: 'load', id: 'l', dir, entry: 'main.handler', function: 'f', version: 1, timeout_ms: 1000, memory_mb: 64 },
    { t: 'invoke', id: 'i1', deadline_ms: Date.now() + 60000, payload: 1 },
    { t: 'invoke', id: 'i2', deadline_ms: Date.now() + 60000, payload: 2 },
  ]);
  assert.deepEqual(
    (await nextN(w, 3)).map((m) => [m.t, m.id, m.value]),
    [
      ['loaded', 'l', undefined],
      ['result', 'i1', { got: 1 }],
      ['result', 'i2', { got: 2 }],
    ],
  );
  assert.equal((await w.close()).code, 0);
});

// ------------------------------------------------ user switch and tmp dir

const NOBODY = 65534;
const isRoot = typeof process.geteuid === 'function' && process.geteuid() === 0;

// A handler that tells who it runs as and where its temporary files go.
const WHO_AM_I = {
  'main.js': `
    const fs = require('fs');
    const os = require('os');
    const path = require('path');
    exports.handler = () => {
      let setuid0 = 'allowed';
      try { process.setuid(0); } catch (err) { setuid0 = err.code; }
      const status = fs.readFileSync('/proc/self/status', 'utf8');
      const ids = (name) => new RegExp('^' + name + ':(.*)$', 'm').exec(status)[1].trim().split(/\\s+/).filter(Boolean).map(Number);
      const made = fs.mkdtempSync(path.join(os.tmpdir(), 'x-'));
      fs.rmdirSync(made);
      return {
        uid: ids('Uid'),
        gid: ids('Gid'),
        groups: ids('Groups'),
        env: [process.env.TMPDIR, process.env.TMP, process.env.TEMP],
        tmpdir: os.tmpdir(),
        mkdtemp: path.dirname(made),
        setuid0,
        cwd: process.cwd(),
      };
    };`,
};

/** A code directory the function's user can read, and a temporary directory it owns. */
function dirsFor(uid, gid) {
  const code = makeFunctionDir(WHO_AM_I);
  fs.chmodSync(code, 0o755);
  const tmp = makeFunctionDir({});
  if (isRoot) fs.chownSync(tmp, uid, gid);
  return { code, tmp };
}

async function loadIn(w, dir, fields) {
  await w.next(); // ready
  return w.request({ t: 'load', id: 'load', dir, entry: 'main.handler', function: 'f', version: 1, timeout_ms: 1000, memory_mb: 64, ...fields });
}

test('e2e: a root worker becomes the function\'s user before the import', async (t) => {
  if (!isRoot) {
    t.skip(`needs root: the daemon starts generic workers as root (running as uid ${process.geteuid()})`);
    return;
  }
  const { code, tmp } = dirsFor(NOBODY, NOBODY);
  // started as the daemon starts it, as root, here with supplementary groups to clear
  const w = startWorker({ prefix: fs.existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', '--groups=1,2', '--'] : [] });
  const loaded = await loadIn(w, code, { env: { TMPDIR: '/from/env' }, uid: NOBODY, gid: NOBODY, tmp });
  assert.equal(loaded.t, 'loaded', JSON.stringify(loaded));
  const reply = await invoke(w, null);
  assert.deepEqual(reply.value, {
    uid: [NOBODY, NOBODY, NOBODY, NOBODY], // real, effective, saved, filesystem
    gid: [NOBODY, NOBODY, NOBODY, NOBODY],
    groups: [],
    env: [tmp, tmp, tmp], // `tmp` wins over an env TMPDIR
    tmpdir: tmp,
    mkdtemp: tmp,
    setuid0: 'EPERM',
    cwd: code,
  });
  assert.equal((await w.close()).code, 0);
});

test('e2e: a worker that may not switch users answers PermissionError', async () => {
  const { code } = dirsFor(NOBODY, NOBODY);
  // as root: a worker already running as nobody, asked for root; otherwise: asked for another uid
  const w = isRoot ? startWorker({ options: { uid: NOBODY, gid: NOBODY } }) : startWorker();
  const [uid, gid] = isRoot ? [0, 0] : [process.getuid() + 1, process.getgid()];
  const reply = await loadIn(w, code, { uid, gid });
  assert.deepEqual([reply.t, reply.kind, reply.traceback], ['error', 'PermissionError', ''], JSON.stringify(reply));
  assert.match(reply.message, new RegExp(`^cannot switch the worker from uid \\d+ gid \\d+ to uid ${uid} gid ${gid}: setgroups\\(\\[\\]\\) failed \\(EPERM\\)`));
  assert.match(reply.message, /run hearth serve as root, or start it with --worker-user set to its own user$/);
  // the worker stays unusable: a later load loads nothing either
  const again = await w.request({ t: 'load', id: 'again', dir: code, entry: 'main.handler', function: 'f', version: 1, timeout_ms: 1000, memory_mb: 64 });
  assert.deepEqual([again.t, again.kind], ['error', 'PermissionError']);
  assert.match(again.message, /start a new worker$/);
  assert.equal((await w.close()).code, 0);
});

test('e2e: the ids the worker already has mean no switch; tmp alone sets the temporary directory', async () => {
  const { code, tmp } = dirsFor(process.getuid(), process.getgid());
  const w = startWorker();
  const loaded = await loadIn(w, code, { uid: process.getuid(), gid: process.getgid(), tmp });
  assert.equal(loaded.t, 'loaded', JSON.stringify(loaded));
  const value = (await invoke(w, null)).value;
  assert.deepEqual(value.uid.slice(0, 2), [process.getuid(), process.geteuid()]);
  assert.deepEqual([value.env, value.tmpdir, value.mkdtemp], [[tmp, tmp, tmp], tmp, tmp]);
  assert.equal((await w.close()).code, 0);
});

test('e2e: malformed uid, gid or tmp are protocol errors', async () => {
  const { code } = dirsFor(process.getuid(), process.getgid());
  for (const [fields, text] of [
    [{ uid: 1000 }, 'load has gid none'],
    [{ gid: 1000 }, 'load has uid none'],
    [{ uid: -1, gid: 0 }, 'load has uid -1'],
    [{ uid: 1.5, gid: 0 }, 'load has uid 1.5'],
    [{ tmp: 5 }, 'load has tmp 5'],
  ]) {
    const w = startWorker();
    const reply = await loadIn(w, code, fields);
    assert.deepEqual([reply.t, reply.kind], ['error', 'ProtocolError'], JSON.stringify(fields));
    assert.ok(reply.message.startsWith(text), reply.message);
    w.child.kill();
    await w.exited;
  }
});

// ------------------------------------------------------------ nested calls

// A handler that makes the nested calls its event asks for and returns what
// they gave (errors as their fields), so the test can play the daemon.
const NESTED = `
  const describe = (err) => ({
    isError: err instanceof context_HearthInvokeError(),
    global: err instanceof globalThis.HearthInvokeError,
    isPlainError: err instanceof Error,
    name: err.name, code: err.code, message: err.message, function: err.function, version: err.version,
    requestId: err.requestId, retryable: err.retryable, error: err.error,
  });
  let saved = null;
  const context_HearthInvokeError = () => saved;
  exports.handler = async (event, context) => {
    saved = context.HearthInvokeError;
    if (event.many) {
      const out = await context.invokeMany(event.many);
      return out.map((item) => (item instanceof context.HearthInvokeError ? describe(item) : { value: item }));
    }
    if (event.bad) {
      try {
        await context.invoke(...event.bad);
        return 'no error';
      } catch (err) {
        return { name: err.name, message: err.message };
      }
    }
    if (event.badMany !== undefined) {
      try {
        await context.invokeMany(event.badMany);
        return 'no error';
      } catch (err) {
        return { name: err.name, message: err.message };
      }
    }
    try {
      const value = await context.invoke(event.name, event.event, event.options);
      return event.tag === undefined ? { value } : { value, tag: event.tag };
    } catch (err) {
      return describe(err);
    }
  };`;

test('e2e: invoke sends a call and resolves to the call_result value', async () => {
  const w = await loadedWorker({ 'main.js': NESTED });
  w.send({ t: 'invoke', id: 'n1', deadline_ms: Date.now() + 60000, payload: { name: 'programs', event: { user: 'u1', limit: 3 } } });
  const call = await w.next();
  assert.deepEqual(call, { t: 'call', id: call.id, parent: 'n1', function: 'programs', payload: { user: 'u1', limit: 3 } });
  assert.match(call.id, /^c\d+$/);
  w.send({ t: 'call_result', id: call.id, ok: true, value: [{ id: 1, title: 'News' }], error: null });
  assert.deepEqual(await w.next(), { t: 'result', id: 'n1', value: { value: [{ id: 1, title: 'News' }] } });
  // with options; and a call with no event sends nil
  w.send({ t: 'invoke', id: 'n2', deadline_ms: Date.now() + 60000, payload: { name: 'user-interests', event: { user: 'u1' }, options: { version: 2, timeoutMs: 250 } } });
  const second = await w.next();
  assert.deepEqual(Object.keys(second), ['t', 'id', 'parent', 'function', 'payload', 'version', 'timeout_ms']);
  assert.deepEqual([second.parent, second.version, second.timeout_ms], ['n2', 2, 250]);
  assert.notEqual(second.id, call.id);
  w.send({ t: 'call_result', id: second.id, ok: true, value: null, error: null });
  assert.deepEqual((await w.next()).value, { value: null });
  w.send({ t: 'invoke', id: 'n3', deadline_ms: Date.now() + 60000, payload: { name: 'programs', options: { alias: 'canary' } } });
  const third = await w.next();
  assert.deepEqual([Object.keys(third), third.payload, third.alias], [['t', 'id', 'parent', 'function', 'payload', 'alias'], null, 'canary']);
  w.send({ t: 'call_result', id: third.id, ok: true, value: 'Welcome', error: null });
  assert.equal((await w.next()).value.value, 'Welcome');
  assert.equal((await w.close()).code, 0);
});

test('e2e: an error call_result rejects with a HearthInvokeError', async () => {
  const w = await loadedWorker({ 'main.js': NESTED });
  const vectors = loadVectors();
  for (const [name, want] of [
    [
      'call_result_function_error',
      {
        code: 'function_error',
        message: "user-interests@2 raised KeyError: 'u1'",
        function: 'user-interests',
        version: 2,
        requestId: '5f3a0c1200000008',
        retryable: false,
        error: { type: 'KeyError', message: "'u1'", traceback: "Traceback (most recent call last):\n  File \"main.py\", line 3, in handler\nKeyError: 'u1'\n" },
      },
    ],
    [
      'call_result_recursion',
      {
        code: 'recursion',
        message: 'programs is already in the call chain (programs@1 -> row@3 -> programs): a function cannot call itself, directly or not',
        function: 'programs',
        version: null,
        requestId: null,
        retryable: false,
        error: null,
      },
    ],
  ]) {
    w.send({ t: 'invoke', id: name, deadline_ms: Date.now() + 60000, payload: { name: 'x', event: 1 } });
    const call = await w.next();
    const answer = { ...vectors.find((v) => v.name === name).message, id: call.id };
    w.send(answer);
    const reply = await w.next();
    assert.deepEqual(reply.value, { isError: true, global: true, isPlainError: true, name: 'HearthInvokeError', ...want }, name);
  }
  // retryable comes through; a missing function falls back to the callee's name
  w.send({ t: 'invoke', id: 'busy', deadline_ms: Date.now() + 60000, payload: { name: 'programs', event: 1 } });
  const call = await w.next();
  w.send({ t: 'call_result', id: call.id, ok: false, value: null, error: { code: 'queue_full', message: 'programs: queue full', retryable: true } });
  const v = (await w.next()).value;
  assert.deepEqual([v.code, v.retryable, v.function, v.version, v.error], ['queue_full', true, 'programs', null, null]);
  assert.equal((await w.close()).code, 0);
});

test('e2e: invokeMany sends every call before any answer and keeps the order', async () => {
  const w = await loadedWorker({ 'main.js': NESTED });
  const many = [
    ['programs', { limit: 3 }],
    { name: 'user-interests', event: { user: 'u1' }, version: 2 },
    ['programs', { genre: 'news' }, { alias: 'canary', timeoutMs: 100 }],
    { name: 'missing' },
  ];
  w.send({ t: 'invoke', id: 'fan', deadline_ms: Date.now() + 60000, payload: { many } });
  const calls = await nextN(w, 4);
  assert.deepEqual(
    calls.map((c) => [c.t, c.parent, c.function, c.payload, c.version, c.alias, c.timeout_ms]),
    [
      ['call', 'fan', 'programs', { limit: 3 }, undefined, undefined, undefined],
      ['call', 'fan', 'user-interests', { user: 'u1' }, 2, undefined, undefined],
      ['call', 'fan', 'programs', { genre: 'news' }, undefined, 'canary', 100],
      ['call', 'fan', 'missing', null, undefined, undefined, undefined],
    ],
  );
  assert.equal(new Set(calls.map((c) => c.id)).size, 4);
  // answered in reverse order, one of them an error
  w.send({ t: 'call_result', id: calls[3].id, ok: false, value: null, error: { code: 'function_not_found', message: 'no function missing', function: 'missing', version: null, request_id: null, retryable: false } });
  w.send({ t: 'call_result', id: calls[2].id, ok: true, value: 'three', error: null });
  w.send({ t: 'ping', id: 'mid' });
  assert.deepEqual(await w.next(), { t: 'pong', id: 'mid' });
  w.send({ t: 'call_result', id: calls[1].id, ok: true, value: ['news', 'sport'], error: null });
  w.send({ t: 'call_result', id: calls[0].id, ok: true, value: [1, 2, 3], error: null });
  const reply = await w.next();
  assert.equal(reply.id, 'fan');
  assert.deepEqual(reply.value.slice(0, 3), [{ value: [1, 2, 3] }, { value: ['news', 'sport'] }, { value: 'three' }]);
  assert.deepEqual([reply.value[3].isError, reply.value[3].code, reply.value[3].message], [true, 'function_not_found', 'no function missing']);
  // an empty list makes no call
  assert.deepEqual((await invoke(w, { many: [] })).value, []);
  assert.equal((await w.close()).code, 0);
});

test('e2e: a ping is answered while a handler waits for its call_result', async () => {
  const w = await loadedWorker({ 'main.js': NESTED });
  w.send({ t: 'invoke', id: 'w1', deadline_ms: Date.now() + 60000, payload: { name: 'slow', event: 1 } });
  const call = await w.next();
  assert.deepEqual(await w.request({ t: 'ping', id: 'p-wait' }), { t: 'pong', id: 'p-wait' });
  w.send({ t: 'call_result', id: 'c999', ok: true, value: 'not mine', error: null }); // unknown: ignored
  w.send({ t: 'call_result', id: call.id, ok: true, value: 'mine', error: null });
  assert.deepEqual(await w.next(), { t: 'result', id: 'w1', value: { value: 'mine' } });
  assert.equal((await w.close()).code, 0);
});

test('e2e: two invokes in flight each get their own call_result, answered crosswise', async () => {
  const w = await loadedWorker({ 'main.js': NESTED });
  const deadline = Date.now() + 60000;
  sendAll(w, [
    { t: 'invoke', id: 'A', deadline_ms: deadline, payload: { name: 'f', event: 'from A', tag: 'A' } },
    { t: 'invoke', id: 'B', deadline_ms: deadline, payload: { name: 'f', event: 'from B', tag: 'B' } },
  ]);
  const calls = await nextN(w, 2);
  const byParent = Object.fromEntries(calls.map((c) => [c.parent, c]));
  assert.deepEqual([byParent.A.payload, byParent.B.payload], ['from A', 'from B']);
  w.send({ t: 'call_result', id: byParent.B.id, ok: true, value: 'for B', error: null });
  assert.deepEqual(await w.next(), { t: 'result', id: 'B', value: { value: 'for B', tag: 'B' } });
  w.send({ t: 'call_result', id: byParent.A.id, ok: true, value: 'for A', error: null });
  assert.deepEqual(await w.next(), { t: 'result', id: 'A', value: { value: 'for A', tag: 'A' } });
  assert.equal((await w.close()).code, 0);
});

test('e2e: a call still waiting when its invoke ends is forgotten; its late call_result is ignored', async () => {
  const w = await loadedWorker({
    'main.js': `
      exports.handler = async (event, context) => {
        if (event === 'leave') {
          context.invoke('slow', null).then(() => console.log('settled late'));
          return 'left';
        }
        if (event === 'keep') {
          kept = context;
          return 'kept';
        }
        if (event === 'stale') return kept.invoke('x', null).then(() => 'sent', (err) => [err.name, err.message]);
        return 'plain';
      };
      let kept = null;`,
  });
  w.send({ t: 'invoke', id: 'L', deadline_ms: Date.now() + 60000, payload: 'leave' });
  const call = await w.next();
  assert.equal(call.t, 'call');
  assert.deepEqual(await w.next(), { t: 'result', id: 'L', value: 'left' });
  w.send({ t: 'call_result', id: call.id, ok: true, value: 1, error: null }); // ignored
  assert.deepEqual(await w.request({ t: 'ping', id: 'p' }), { t: 'pong', id: 'p' });
  assert.equal((await invoke(w, 'plain')).value, 'plain');
  assert.doesNotMatch(w.stdout, /settled late/);
  // a context kept past its invoke cannot make calls
  assert.equal((await invoke(w, 'keep')).value, 'kept');
  const [name, message] = (await invoke(w, 'stale')).value;
  assert.equal(name, 'Error');
  assert.match(message, /^context.invoke: request r\d+ has already been answered; make nested calls before the handler returns$/);
  assert.equal((await w.close()).code, 0);
});

test('e2e: nested-call arguments are checked with a TypeError', async () => {
  const w = await loadedWorker({ 'main.js': NESTED });
  const cases = [
    [[''], /context.invoke: the function name must be a non-empty string, not ""/],
    [[42], /the function name must be a non-empty string, not 42/],
    [['f', 1, { version: 1, alias: 'a' }], /give version or alias, not both/],
    [['f', 1, { version: 0 }], /version must be a positive integer, not 0/],
    [['f', 1, { version: 1.5 }], /version must be a positive integer/],
    [['f', 1, { alias: '' }], /alias must be a non-empty string/],
    [['f', 1, { timeoutMs: 0 }], /timeoutMs must be a positive integer \(milliseconds\), not 0/],
    [['f', 1, { timeoutMs: '100' }], /timeoutMs must be a positive integer/],
    [['f', 1, { timeout_ms: 100 }], /unknown option "timeout_ms" \(did you mean timeoutMs\?\)/],
    [['f', 1, 'fast'], /options must be an object/],
  ];
  for (const [args, pattern] of cases) {
    const reply = await invoke(w, { bad: args });
    assert.equal(reply.value.name, 'TypeError', JSON.stringify(args));
    assert.match(reply.value.message, pattern, JSON.stringify(args));
  }
  for (const [many, pattern] of [
    [{ name: 'f' }, /context.invokeMany: expects an array/],
    [[['f'], ['']], /context.invokeMany item 1: the function name must be a non-empty string/],
    [[['f'], 'g'], /item 1: each item is \[name, event, options\]/],
    [[{ name: 'f', timeoutMs: -1 }], /item 0: timeoutMs must be a positive integer/],
  ]) {
    const reply = await invoke(w, { badMany: many });
    assert.equal(reply.value.name, 'TypeError', JSON.stringify(many));
    assert.match(reply.value.message, pattern);
  }
  // nothing was sent for any of them: the next frame is a pong
  assert.deepEqual(await w.request({ t: 'ping', id: 'none-sent' }), { t: 'pong', id: 'none-sent' });
  assert.equal((await w.close()).code, 0);
});

test('an event that cannot be sent is a TypeError and no call goes out', () => {
  const frames = [];
  const w = new worker.Worker((frame) => frames.push(frame), () => {}, () => []);
  w.running.set('r1', null);
  const context = new worker.Context('r1', 'f', 1, 128, 0, w);
  return context.invokeMany([['a', 1], ['b', { f() {} }]]).then(
    () => assert.fail('expected a rejection'),
    (err) => {
      assert.ok(err instanceof TypeError);
      assert.match(err.message, /context.invokeMany: the event for b \(item 1\) cannot be sent/);
      assert.equal(frames.length, 0);
      assert.equal(w.pendingCalls.size, 0);
    },
  );
});

// --------------------------------------------------------------- examples

const EXAMPLES = path.join(__dirname, '..', '..', 'examples', 'node');

/** A worker that loaded an example's code directory. */
async function exampleWorker(name) {
  const w = startWorker();
  assert.equal((await w.next()).t, 'ready');
  const loaded = await w.request({ t: 'load', id: 'l', dir: path.join(EXAMPLES, name), entry: 'main.handler', function: name, version: 1, timeout_ms: 3000, memory_mb: 128 });
  assert.equal(loaded.t, 'loaded', JSON.stringify(loaded));
  return w;
}

test('example programs: a limit, a genre, the shape of each program', async () => {
  const w = await exampleWorker('programs');
  const three = (await invoke(w, { limit: 3 })).value;
  assert.equal(three.length, 3);
  for (const p of three) assert.deepEqual(Object.keys(p), ['id', 'title', 'genre', 'duration_min']);
  const news = (await invoke(w, { limit: 10, genre: 'news' })).value;
  assert.ok(news.length >= 2 && news.every((p) => p.genre === 'news'));
  assert.equal((await invoke(w, {})).value.length, 12);
  assert.deepEqual((await invoke(w, { genre: 'opera' })).value, []);
  const bad = await invoke(w, { limit: 'lots' });
  assert.deepEqual([bad.t, bad.kind], ['error', 'TypeError']);
  assert.equal((await w.close()).code, 0);
});

test('example programs-for-user: calls user-interests, then programs, and filters', async () => {
  const w = await exampleWorker('programs-for-user');
  const programs = require(path.join(EXAMPLES, 'programs', 'main.js'));
  w.send({ t: 'invoke', id: 'u', deadline_ms: Date.now() + 60000, payload: { user: 'u1', limit: 2 } });
  const first = await w.next();
  assert.deepEqual([first.t, first.function, first.payload], ['call', 'user-interests', { user: 'u1' }]);
  // refused before it ran: the example tries once more
  w.send({ t: 'call_result', id: first.id, ok: false, value: null, error: { code: 'queue_full', message: 'busy', function: 'user-interests', version: null, request_id: null, retryable: true } });
  const again = await w.next();
  assert.deepEqual([again.function, again.payload], ['user-interests', { user: 'u1' }]);
  w.send({ t: 'call_result', id: again.id, ok: true, value: { user: 'u1', genres: ['news', 'documentary'] }, error: null });
  const second = await w.next();
  assert.equal(second.function, 'programs');
  w.send({ t: 'call_result', id: second.id, ok: true, value: await programs.handler(second.payload), error: null });
  const reply = await w.next();
  assert.equal(reply.t, 'result', JSON.stringify(reply));
  assert.deepEqual(reply.value.genres, ['news', 'documentary']);
  assert.deepEqual(reply.value.programs.map((p) => p.genre), ['news', 'documentary']);
  // a callee's failure fails the call, as a HearthInvokeError
  w.send({ t: 'invoke', id: 'v', deadline_ms: Date.now() + 60000, payload: {} });
  const call = await w.next();
  w.send({ t: 'call_result', id: call.id, ok: false, value: null, error: { code: 'function_error', message: 'user-interests@1 raised ValueError: user-interests needs "user"', function: 'user-interests', version: 1, request_id: 'x', retryable: false, kind: 'ValueError', traceback: '' } });
  const failed = await w.next();
  assert.deepEqual([failed.t, failed.kind], ['error', 'HearthInvokeError']);
  assert.match(failed.message, /raised ValueError/);
  assert.equal((await w.close()).code, 0);
});
