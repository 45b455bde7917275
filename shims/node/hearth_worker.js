'use strict';
// hearth worker shim for Node.js.
//
// Started by the hearth daemon as `node /abs/path/hearth_worker.js`, one
// process per worker. Speaks the protocol in shims/PROTOCOL.md: length-prefixed
// MessagePack frames, reading fd 3 and writing fd 4, so that the function's own
// stdout and stderr (console.log) stay free for its logs. Self-contained: it
// needs only ./codec.js beside it, no node_modules.
//
// Messages are handled one at a time, in order, like the Python shim: a `ping`
// or `shutdown` that arrives while an async handler runs is answered after it.

const fs = require('fs');
const net = require('net');
const path = require('path');
const codec = require('./codec');

const PROTOCOL = 1;
const MAX_FRAME = codec.MAX_FRAME;
const IN_FD = 3;
const OUT_FD = 4;
/** Files tried, in order, for the module of an entry (as the daemon's manifest check). */
const EXTENSIONS = ['.js', '.mjs', '.cjs'];

/** The daemon sent something that cannot be read: the channel is broken. */
class ProtocolError extends Error {
  get name() {
    return 'ProtocolError';
  }
}

/** The module loaded but has no function under the entry's name. */
class EntryNotFound extends Error {
  get name() {
    return 'EntryNotFound';
  }
}

// ------------------------------------------------------------------ frames

/** Encode a message as a whole frame (length prefix included). */
function encodeFrame(message) {
  return codec.encodeFrame(message);
}

/** Decode a frame body; it must be a map with a string `t`. */
function decodeBody(buffer, start = 0, end = buffer.length) {
  let message;
  try {
    message = codec.decode(buffer, start, end);
  } catch (err) {
    throw new ProtocolError(`cannot decode a frame: ${err.message}`);
  }
  if (message === null || typeof message !== 'object' || Array.isArray(message) || typeof message.t !== 'string') {
    throw new ProtocolError('frame is not a map with a string `t`');
  }
  return message;
}

/**
 * Cuts the byte stream from the daemon into frames and hands each decoded
 * message to `onMessage`. A frame held whole in one chunk is decoded in place;
 * one spread over chunks is joined once, when its last byte has come.
 */
class FrameReader {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.parts = []; // chunks of an incomplete frame
    this.have = 0; // bytes in `parts`
    this.want = 4; // bytes needed before `parts` is worth looking at again
  }

  /** Feed bytes; throws ProtocolError for an oversized or undecodable frame. */
  push(chunk) {
    let data = chunk;
    if (this.have > 0) {
      this.parts.push(chunk);
      this.have += chunk.length;
      if (this.have < this.want) return;
      data = Buffer.concat(this.parts, this.have);
      this.parts = [];
      this.have = 0;
    }
    let offset = 0;
    while (data.length - offset >= 4) {
      const length = frameLength(data, offset);
      if (data.length - offset - 4 < length) break;
      const body = offset + 4;
      offset = body + length;
      this.onMessage(decodeBody(data, body, offset));
    }
    if (offset < data.length) {
      const rest = data.subarray(offset);
      this.parts = [rest];
      this.have = rest.length;
      this.want = rest.length >= 4 ? 4 + frameLength(rest, 0) : 4;
    }
  }

  /** End of file. Returns the number of bytes of an unfinished frame (dropped). */
  end() {
    const dropped = this.have;
    this.parts = [];
    this.have = 0;
    return dropped;
  }
}

function frameLength(data, offset) {
  const length = data.readUInt32BE(offset);
  if (length > MAX_FRAME) {
    throw new ProtocolError(`frame of ${length} bytes is over the ${MAX_FRAME} byte limit`);
  }
  return length;
}

// --------------------------------------------------------- handler context

/** The handler's second argument (with the Lambda names as well). */
class Context {
  constructor(requestId, functionName, functionVersion, memoryLimitInMB, deadlineMs) {
    this.requestId = requestId;
    this.awsRequestId = requestId;
    this.functionName = functionName;
    this.functionVersion = functionVersion;
    this.memoryLimitInMB = memoryLimitInMB;
    this.deadlineMs = deadlineMs;
  }

  /** Milliseconds left before the daemon's deadline (never negative). */
  getRemainingTimeInMillis() {
    return Math.max(0, Math.floor(this.deadlineMs - Date.now()));
  }
}

/** Lambda-style handlers take (event, context); plain ones may take just (event). */
function takesOneArgument(handler) {
  // Function.length counts the parameters before the first default or rest one.
  return handler.length === 1;
}

function isThenable(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof value.then === 'function';
}

// ---------------------------------------------------------------- errors

const SHIM_FILES = [__filename, path.join(__dirname, 'codec.js')];

/** The stack without the shim's and Node's internal frames, so it shows the user's code. */
function userStack(err) {
  const stack = err !== null && typeof err === 'object' && typeof err.stack === 'string' ? err.stack : '';
  return stack
    .split('\n')
    .filter((line) => {
      if (!/^\s+at /.test(line)) return true;
      return !line.includes('node:internal') && !SHIM_FILES.some((file) => line.includes(file));
    })
    .join('\n');
}

/** `error` message for something thrown by the user's code (any value may be thrown). */
function errorMessage(id, err) {
  if (err instanceof Error || (err !== null && typeof err === 'object' && typeof err.message === 'string')) {
    return {
      t: 'error',
      id,
      kind: typeof err.name === 'string' && err.name ? err.name : 'Error',
      message: String(err.message),
      traceback: userStack(err),
    };
  }
  let text;
  try {
    text = typeof err === 'string' ? err : JSON.stringify(err) ?? String(err);
  } catch {
    text = String(err);
  }
  return { t: 'error', id, kind: 'Error', message: text, traceback: '' };
}

function shimError(id, kind, message) {
  return { t: 'error', id, kind, message, traceback: '' };
}

function logError(text) {
  try {
    fs.writeSync(2, `hearth worker: ${text}\n`);
  } catch {
    // stderr is gone as well: nothing more to say
  }
}

// ---------------------------------------------------------- loading code

/** The file and attribute named by `entry` (`a.b.handler` -> a/b.js, .mjs or .cjs; `handler`). */
function resolveEntry(dir, entry) {
  const dot = entry.lastIndexOf('.');
  const moduleName = entry.slice(0, dot);
  const attr = entry.slice(dot + 1);
  const parts = moduleName.split('.');
  if (dot <= 0 || !attr || parts.some((p) => !p || p.includes('/') || p.includes('\\'))) {
    throw new Error(`entry "${entry}" must look like module.handler, for example "main.handler"`);
  }
  const base = path.join(dir, ...parts);
  for (const ext of EXTENSIONS) {
    let stat = null;
    try {
      stat = fs.statSync(base + ext);
    } catch {
      continue;
    }
    if (stat.isFile()) return { file: base + ext, moduleName, attr };
  }
  const tried = EXTENSIONS.map((ext) => parts.join('/') + ext).join(', ');
  const err = new Error(`Cannot find module '${moduleName}' in ${dir} (tried ${tried})`);
  err.code = 'MODULE_NOT_FOUND';
  throw err;
}

/** The handler in a module's exports, or in its default export object. */
function findHandler(exports, moduleName, attr) {
  let holder = exports;
  let handler = exports != null ? exports[attr] : undefined;
  if (handler === undefined && exports != null && exports.default != null && typeof exports.default === 'object') {
    holder = exports.default;
    handler = holder[attr];
  }
  if (handler === undefined) {
    throw new EntryNotFound(`module ${moduleName} has no export named "${attr}"`);
  }
  if (typeof handler !== 'function') {
    const type = handler === null ? 'null' : typeof handler;
    throw new EntryNotFound(`${moduleName}.${attr} is a ${type}, not a function`);
  }
  return { holder, handler };
}

/** Import an ES module (a promise of its namespace). */
function importModule(file) {
  const { pathToFileURL } = require('url');
  return import(pathToFileURL(file).href);
}

/**
 * Load a module: require() for CommonJS, import() for ES modules (.mjs, or a
 * .js that a package.json declares "type": "module"). Returns the exports, or
 * a promise of them.
 */
function loadModule(file) {
  if (file.endsWith('.mjs')) return importModule(file);
  try {
    return require(file);
  } catch (err) {
    if (err && err.code === 'ERR_REQUIRE_ESM') return importModule(file);
    throw err;
  }
}

/** The loaded function: its handler and what the context needs. */
class LoadedFunction {
  constructor(load, holder, handler) {
    this.name = load.function === undefined ? '' : load.function;
    this.version = load.version === undefined ? 0 : load.version;
    this.memoryMb = load.memory_mb === undefined ? 0 : load.memory_mb;
    this.holder = holder;
    this.handler = handler;
    this.oneArg = takesOneArgument(handler);
  }

  /** Call the handler; returns its value or a thenable. */
  call(id, event, deadlineMs) {
    if (this.oneArg) return this.handler.call(this.holder, event);
    const context = new Context(id, this.name, this.version, this.memoryMb, deadlineMs);
    return this.handler.call(this.holder, event, context);
  }
}

// ---------------------------------------------------------------- worker

const END_OF_INPUT = Symbol('end of input');

class Worker {
  /**
   * `write(frame)` sends a frame; `exit(code)` flushes and ends the process.
   */
  constructor(write, exit) {
    this.write = write;
    this.exit = exit;
    this.fn = null;
    this.queue = [];
    this.busy = false; // an async load or invoke is running
    this.stopping = false;
    // While an async load or invoke runs: fail(err) ends it with an error
    // (used for uncaught exceptions and unhandled rejections meanwhile).
    this.current = null;
  }

  send(message) {
    this.write(encodeFrame(message));
  }

  ready() {
    this.send({
      t: 'ready',
      protocol: PROTOCOL,
      runtime: 'node',
      runtime_version: process.versions.node,
      pid: process.pid,
    });
  }

  /** Queue a message from the daemon (or END_OF_INPUT) and work through the queue. */
  enqueue(message) {
    this.queue.push(message);
    if (!this.busy) this.pump();
  }

  pump() {
    while (!this.busy && !this.stopping && this.queue.length > 0) {
      const pending = this.handle(this.queue.shift());
      if (pending instanceof Promise) {
        this.busy = true;
        pending.then(() => {
          this.busy = false;
          this.pump();
        });
      }
    }
  }

  /** Act on one message; returns a promise when the work goes on asynchronously. */
  handle(message) {
    if (message === END_OF_INPUT) return this.stop(0);
    const kind = message.t;
    const id = message.id === undefined ? '' : message.id;
    switch (kind) {
      case 'invoke':
        return this.invoke(id, message);
      case 'load':
        return this.load(id, message);
      case 'ping':
        return this.send({ t: 'pong', id });
      case 'shutdown':
        return this.stop(0);
      case 'cancel':
      case 'call_result':
        return undefined; // reserved: ignored in protocol version 1
      default:
        return this.send(shimError(id, 'ProtocolError', `unknown message type "${kind}"`));
    }
  }

  stop(code) {
    this.stopping = true;
    this.exit(code);
  }

  /** Run `work()` (which returns a thenable) until it settles or `current.fail` is called. */
  track(work, onValue, onError) {
    return new Promise((resolve) => {
      let settled = false;
      const settle = (fn, arg) => {
        if (settled) return;
        settled = true;
        this.current = null;
        fn(arg);
        resolve();
      };
      this.current = { fail: (err) => settle(onError, err) };
      Promise.resolve()
        .then(work)
        .then(
          (value) => settle(onValue, value),
          (err) => settle(onError, err),
        );
    });
  }

  load(id, message) {
    if (this.fn !== null) return this.send(shimError(id, 'ProtocolError', 'code is already loaded'));
    if (typeof message.dir !== 'string' || typeof message.entry !== 'string') {
      return this.send(shimError(id, 'ProtocolError', 'load needs string fields `dir` and `entry`'));
    }
    const started = performance.now();
    let target;
    let exports;
    try {
      target = resolveEntry(message.dir, message.entry);
      process.chdir(message.dir);
      exports = loadModule(target.file);
    } catch (err) {
      return this.send(errorMessage(id, err));
    }
    const loaded = (moduleExports) => {
      let found;
      try {
        found = findHandler(moduleExports, target.moduleName, target.attr);
      } catch (err) {
        return this.send(shimError(id, 'EntryNotFound', err.message));
      }
      this.fn = new LoadedFunction(message, found.holder, found.handler);
      // load_ms is a float on the wire even when it is a whole number.
      this.send({ t: 'loaded', id, load_ms: new codec.Float64(performance.now() - started) });
    };
    if (exports instanceof Promise) {
      return this.track(() => exports, loaded, (err) => this.send(errorMessage(id, err)));
    }
    return loaded(exports);
  }

  invoke(id, message) {
    if (this.fn === null) return this.send(shimError(id, 'ProtocolError', 'invoke before load'));
    const event = message.payload === undefined ? null : message.payload;
    const deadlineMs = message.deadline_ms === undefined ? 0 : Number(message.deadline_ms);
    let value;
    try {
      value = this.fn.call(id, event, deadlineMs);
    } catch (err) {
      return this.send(errorMessage(id, err));
    }
    if (isThenable(value)) {
      return this.track(
        () => value,
        (result) => this.sendResult(id, result),
        (err) => this.send(errorMessage(id, err)),
      );
    }
    return this.sendResult(id, value);
  }

  sendResult(id, value) {
    let frame;
    try {
      frame = encodeFrame({ t: 'result', id, value: value === undefined ? null : value });
    } catch (err) {
      const why = err && err.message ? err.message : String(err);
      return this.send(
        shimError(
          id,
          'ResultNotSerializable',
          `handler returned a value hearth cannot send (${why}); return JSON-like data: ` +
            'objects, arrays, strings, numbers, booleans, null or Buffers',
        ),
      );
    }
    this.write(frame);
  }

  /** An exception nobody caught (or a rejection nobody handled). */
  uncaught(err, origin) {
    const what = origin === 'unhandledRejection' ? 'unhandled promise rejection' : 'uncaught exception';
    if (this.current !== null) {
      logError(`${what} while the handler ran; it fails the current request:\n${userStack(err) || String(err)}`);
      this.current.fail(err);
      return;
    }
    logError(`${what} outside any request; exiting:\n${(err && err.stack) || String(err)}`);
    process.exit(1);
  }
}

// ---------------------------------------------------------------- channel

/** A stream over an inherited fd: a libuv pipe/socket handle (non-blocking), else an fs stream. */
function openChannel(fd, forReading) {
  try {
    return new net.Socket({ fd, readable: forReading, writable: !forReading });
  } catch (err) {
    if (err.code !== 'ERR_INVALID_FD_TYPE') throw err;
    // A regular file or a tty, when the shim is run by hand.
    return forReading ? fs.createReadStream(null, { fd }) : fs.createWriteStream(null, { fd });
  }
}

function main() {
  for (const fd of [IN_FD, OUT_FD]) {
    try {
      fs.fstatSync(fd);
    } catch {
      logError(`fd ${fd} is not open; this program is started by the hearth daemon`);
      process.exit(70);
    }
  }
  // Node marks inherited descriptors close-on-exec at start-up, so processes
  // the function starts do not get fds 3 and 4.
  const input = openChannel(IN_FD, true);
  const output = openChannel(OUT_FD, false);

  const exit = (code) => {
    input.destroy();
    if (output.destroyed || output.writableFinished) process.exit(code);
    output.end(() => process.exit(code));
  };
  const worker = new Worker((frame) => output.write(frame), exit);
  process.on('uncaughtException', (err, origin) => worker.uncaught(err, origin));

  output.on('error', (err) => {
    logError(`cannot write to the daemon (fd ${OUT_FD}): ${err.message}`);
    process.exit(1);
  });
  input.on('error', (err) => {
    logError(`cannot read from the daemon (fd ${IN_FD}): ${err.message}`);
    process.exit(1);
  });

  worker.ready();

  const reader = new FrameReader((message) => worker.enqueue(message));
  input.on('data', (chunk) => {
    try {
      reader.push(chunk);
    } catch (err) {
      logError(`protocol channel broken: ${err.message}`);
      process.exit(1);
    }
  });
  input.on('end', () => {
    reader.end();
    worker.enqueue(END_OF_INPUT);
  });
}

module.exports = {
  PROTOCOL,
  MAX_FRAME,
  ProtocolError,
  EntryNotFound,
  FrameReader,
  Context,
  Worker,
  encodeFrame,
  decodeBody,
  takesOneArgument,
  resolveEntry,
  findHandler,
  errorMessage,
  userStack,
};

if (require.main === module) main();
