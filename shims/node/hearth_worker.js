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

/** The stack without the shim's and Node's own (node:...) frames, so it shows the user's code. */
function userStack(err) {
  const stack = err !== null && typeof err === 'object' && typeof err.stack === 'string' ? err.stack : '';
  return stack
    .split('\n')
    .filter((line) => {
      if (!/^\s+at /.test(line)) return true;
      return !/[( ]node:/.test(line) && !SHIM_FILES.some((file) => line.includes(file));
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

/** The `result` frame for `value`, or a ResultNotSerializable `error` frame. */
function resultFrame(id, value) {
  try {
    return encodeFrame({ t: 'result', id, value: value === undefined ? null : value });
  } catch (err) {
    const why = err && err.message ? err.message : String(err);
    return encodeFrame(
      shimError(
        id,
        'ResultNotSerializable',
        `handler returned a value hearth cannot send (${why}); return JSON-like data: ` +
          'objects, arrays, strings, numbers, booleans, null or Buffers',
      ),
    );
  }
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
  const base = path.resolve(dir, ...parts); // absolute, or require() would search node_modules
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
   * `write(frame)` sends a frame; `exit(code)` flushes and ends the process;
   * `logStreams()` gives the streams to drain before an answer.
   */
  constructor(write, exit, logStreams = () => [process.stdout, process.stderr]) {
    this.write = write;
    this.exit = exit;
    this.logStreams = logStreams;
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

  /** Stop taking messages and exit with `code` once the replies are out. */
  stop(code) {
    if (this.stopping) return;
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
        let after;
        try {
          after = fn(arg);
        } finally {
          // the next message waits for the answer to be out, never on a failure here
          if (after instanceof Promise) after.then(resolve, resolve);
          else resolve();
        }
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
      // A worker may be started before it knows its function (a generic
      // worker): the function's environment comes with `load`.
      if (message.env && typeof message.env === 'object') {
        for (const [key, value] of Object.entries(message.env)) process.env[key] = String(value);
      }
      target = resolveEntry(message.dir, message.entry);
      process.chdir(message.dir);
      exports = loadModule(target.file);
    } catch (err) {
      return this.answer(encodeFrame(errorMessage(id, err)));
    }
    const loaded = (moduleExports) => {
      let found;
      try {
        found = findHandler(moduleExports, target.moduleName, target.attr);
      } catch (err) {
        if (err instanceof EntryNotFound) return this.answer(encodeFrame(shimError(id, 'EntryNotFound', err.message)));
        return this.answer(encodeFrame(errorMessage(id, err))); // e.g. a getter on the exports threw
      }
      this.fn = new LoadedFunction(message, found.holder, found.handler);
      // load_ms is a float on the wire even when it is a whole number.
      return this.answer(encodeFrame({ t: 'loaded', id, load_ms: new codec.Float64(performance.now() - started) }));
    };
    if (exports instanceof Promise) {
      return this.track(() => exports, loaded, (err) => this.answer(encodeFrame(errorMessage(id, err))));
    }
    return loaded(exports);
  }

  invoke(id, message) {
    if (this.fn === null) return this.send(shimError(id, 'ProtocolError', 'invoke before load'));
    const event = message.payload === undefined ? null : message.payload;
    const deadlineMs = message.deadline_ms === undefined ? 0 : Number(message.deadline_ms);
    let value;
    let thenable;
    try {
      value = this.fn.call(id, event, deadlineMs);
      thenable = isThenable(value);
    } catch (err) {
      return this.answer(encodeFrame(errorMessage(id, err)));
    }
    if (thenable) {
      return this.track(
        () => value,
        (result) => this.answer(resultFrame(id, result)),
        (err) => this.answer(encodeFrame(errorMessage(id, err))),
      );
    }
    return this.answer(resultFrame(id, value));
  }

  /**
   * Send the answer to a load or invoke once what the code printed is out of
   * the process (PROTOCOL.md: a call's output is in the pipes before its
   * answer). stdout and stderr are synchronous on pipes on Linux, so this
   * waits only when they are sockets or the like; it then returns a promise.
   */
  answer(frame) {
    const queued = [];
    for (const stream of this.logStreams()) {
      if (stream.writableLength > 0 && !stream.destroyed) queued.push(stream);
    }
    if (queued.length === 0) {
      this.write(frame);
      return undefined;
    }
    return new Promise((resolve) => {
      let left = queued.length;
      const flushed = () => {
        left -= 1;
        if (left > 0) return;
        this.write(frame);
        resolve();
      };
      for (const stream of queued) stream.write('', flushed);
    });
  }

  /** An exception nobody caught (or a rejection nobody handled). */
  uncaught(err, origin) {
    const what = origin === 'unhandledRejection' ? 'unhandled promise rejection' : 'uncaught exception';
    if (this.current !== null) {
      logError(`${what} while a request ran; it fails that request:\n${userStack(err) || String(err)}`);
      this.current.fail(err);
      return;
    }
    logError(`${what} outside any request; exiting:\n${(err && err.stack) || String(err)}`);
    this.stop(1);
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

/**
 * Exit with `code` once `streams` are ended and stdout and stderr flushed (on
 * Linux they are synchronous when they are pipes, as the daemon's are, but
 * asynchronous on sockets, and process.exit() would drop what is queued).
 * The function's own timers and sockets do not keep the worker alive.
 */
function finishWrites(streams, code) {
  process.exitCode = code;
  const done = () => process.exit(code);
  setTimeout(done, 2000); // a reader that stopped reading must not hold us
  let waiting = 1;
  const one = () => {
    waiting -= 1;
    if (waiting === 0) done();
  };
  for (const stream of [...streams, process.stdout, process.stderr]) {
    if (stream.destroyed || stream.writableFinished) continue;
    waiting += 1;
    if (streams.includes(stream)) stream.end(one);
    else stream.write('', one);
  }
  one();
}

/**
 * Why `fd` cannot be the daemon's pipe, or null. An open fd is not proof:
 * Node opens descriptors of its own at start-up (epoll, eventfd, pipes), which
 * take the lowest free numbers, 3 and 4 among them when the daemon's are
 * missing. Theirs are anonymous inodes, or the read end of a pipe (where fd 4
 * would be), so on Linux /proc tells them apart.
 */
function channelProblem(fd, forWriting) {
  try {
    fs.fstatSync(fd);
  } catch {
    return 'is not open';
  }
  let link;
  let info;
  try {
    link = fs.readlinkSync(`/proc/self/fd/${fd}`);
    info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1');
  } catch {
    return null; // no /proc: take fstat's word
  }
  if (link.startsWith('anon_inode:')) return 'is not open';
  const flags = /^flags:\s*([0-7]+)/m.exec(info);
  const access = flags ? parseInt(flags[1], 8) & 3 : 2; // O_RDONLY 0, O_WRONLY 1, O_RDWR 2
  if (forWriting ? access === 0 : access === 1) return `is not open for ${forWriting ? 'writing' : 'reading'}`;
  return null;
}

function main() {
  for (const [fd, forWriting] of [
    [IN_FD, false],
    [OUT_FD, true],
  ]) {
    const problem = channelProblem(fd, forWriting);
    if (problem !== null) {
      logError(`fd ${fd} ${problem}; this program is started by the hearth daemon`);
      process.exit(70);
    }
  }
  // Node marks inherited descriptors close-on-exec at start-up, so processes
  // the function starts do not get fds 3 and 4.
  const input = openChannel(IN_FD, true);
  const output = openChannel(OUT_FD, false);

  const exit = (code) => {
    input.destroy();
    finishWrites([output], code);
  };
  const worker = new Worker((frame) => output.write(frame), exit);
  process.on('uncaughtException', (err, origin) => worker.uncaught(err, origin));

  output.on('error', (err) => {
    logError(`cannot write to the daemon (fd ${OUT_FD}): ${err.message}`);
    worker.stop(1);
  });
  input.on('error', (err) => {
    logError(`cannot read from the daemon (fd ${IN_FD}): ${err.message}`);
    worker.stop(1);
  });

  worker.ready();

  const reader = new FrameReader((message) => worker.enqueue(message));
  input.on('data', (chunk) => {
    try {
      reader.push(chunk);
    } catch (err) {
      logError(err instanceof ProtocolError ? `protocol channel broken: ${err.message}` : `internal error: ${err.stack}`);
      worker.stop(1);
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
  LoadedFunction,
  encodeFrame,
  decodeBody,
  takesOneArgument,
  resolveEntry,
  findHandler,
  errorMessage,
  userStack,
};

if (require.main === module) main();
