'use strict';
// hearth worker shim for Node.js.
//
// Started by the hearth daemon as `node /abs/path/hearth_worker.js`, one
// process per worker. Speaks the protocol in shims/PROTOCOL.md: length-prefixed
// MessagePack frames, reading fd 3 and writing fd 4, so that the function's own
// stdout and stderr (console.log) stay free for its logs. Self-contained: it
// needs only ./codec.js beside it, no node_modules.
//
// Messages are handled in order. An `invoke` starts as soon as it is read and
// does not hold up the messages after it, so several calls can be in flight
// (the daemon sends a Node worker up to `concurrency` at once); each is answered
// with its own id when it settles. A `load` holds up everything after it until
// it is answered; `shutdown` (or end of file) waits for the calls in flight.

const { AsyncLocalStorage } = require('async_hooks');
const fs = require('fs');
const net = require('net');
const path = require('path');
const codec = require('./codec');

/** The marker of an error with one of the function's own codes (see ./hearth.js). */
const HEARTH_ERROR = Symbol.for('hearth.error');
let hearthModule = null;

/** ./hearth.js (the error classes), loaded by warmUp() at start-up. */
function hearth() {
  if (hearthModule === null) hearthModule = require('./hearth');
  return hearthModule;
}

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

/** The worker cannot run as the user `load` asked for (or cannot enter the code as that user). */
class PermissionError extends Error {
  get name() {
    return 'PermissionError';
  }
}

/** What an operator can do when a worker may not switch users. */
const SWITCH_ADVICE = 'run hearth serve as root, or start it with --worker-user set to its own user';

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

const INVOKE_OPTIONS = new Set(['version', 'alias', 'timeoutMs']);
const MAX_U32 = 0xffffffff;

/**
 * Check one nested call's arguments and build its `call` message (without
 * `id`); `where` names it in the TypeError ("context.invoke", "context.invokeMany item 2").
 */
function callMessage(where, parent, name, event, options) {
  if (typeof name !== 'string' || name === '') {
    throw new TypeError(`${where}: the function name must be a non-empty string, not ${describe(name)}`);
  }
  const message = { t: 'call', id: '', parent, function: name, payload: event === undefined ? null : event };
  if (options === undefined || options === null) return message;
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${where}: options must be an object like {version, alias, timeoutMs}, not ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!INVOKE_OPTIONS.has(key)) {
      const hint = key === 'timeout_ms' ? ' (did you mean timeoutMs?)' : '';
      throw new TypeError(`${where}: unknown option "${key}"${hint}; the options are version, alias and timeoutMs`);
    }
  }
  const { version, alias, timeoutMs } = options;
  if (version !== undefined && version !== null && alias !== undefined && alias !== null) {
    throw new TypeError(`${where}: give version or alias, not both`);
  }
  if (version !== undefined && version !== null) {
    if (!Number.isInteger(version) || version < 1 || version > MAX_U32) {
      throw new TypeError(`${where}: version must be a positive integer, not ${describe(version)}`);
    }
    message.version = version;
  }
  if (alias !== undefined && alias !== null) {
    if (typeof alias !== 'string' || alias === '') {
      throw new TypeError(`${where}: alias must be a non-empty string, not ${describe(alias)}`);
    }
    message.alias = alias;
  }
  if (timeoutMs !== undefined && timeoutMs !== null) {
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
      throw new TypeError(`${where}: timeoutMs must be a positive integer (milliseconds), not ${describe(timeoutMs)}`);
    }
    message.timeout_ms = timeoutMs;
  }
  return message;
}

function describe(value) {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

/** An item of invokeMany: [name, event, options] or {name, event, ...options}. */
function callOfItem(where, parent, item) {
  if (Array.isArray(item)) {
    if (item.length < 1 || item.length > 3) {
      throw new TypeError(`${where}: an array item is [name, event, options], not ${item.length} elements`);
    }
    return callMessage(where, parent, item[0], item[1], item[2]);
  }
  if (item !== null && typeof item === 'object') {
    const { name, event, ...options } = item;
    return callMessage(where, parent, name, event, options);
  }
  throw new TypeError(`${where}: each item is [name, event, options] or {name, event, ...options}, not ${describe(item)}`);
}

/** The handler's second argument (with the Lambda names as well). */
class Context {
  #calls;

  constructor(requestId, functionName, functionVersion, memoryLimitInMB, deadlineMs, calls = null) {
    this.requestId = requestId;
    this.awsRequestId = requestId;
    this.functionName = functionName;
    this.functionVersion = functionVersion;
    this.memoryLimitInMB = memoryLimitInMB;
    this.deadlineMs = deadlineMs;
    this.#calls = calls;
  }

  /** Milliseconds left before the daemon's deadline (never negative). */
  getRemainingTimeInMillis() {
    return Math.max(0, Math.floor(this.deadlineMs - Date.now()));
  }

  /**
   * Call another function through the daemon: a promise of its value, or
   * rejected with a HearthInvokeError (a TypeError for bad arguments).
   */
  invoke(name, event, options) {
    try {
      const message = callMessage('context.invoke', this.requestId, name, event, options);
      return this.#nested('context.invoke').startCalls(this.requestId, 'context.invoke', [message])[0];
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Several nested calls at once (all sent before any answer): a promise of
   * an array in the same order, each item the callee's value or a
   * HearthInvokeError (not thrown). Rejects only for bad arguments.
   */
  invokeMany(calls) {
    try {
      if (!Array.isArray(calls)) {
        throw new TypeError(`context.invokeMany: expects an array of [name, event, options] or {name, event, ...options}, not ${describe(calls)}`);
      }
      const messages = calls.map((item, i) => callOfItem(`context.invokeMany item ${i}`, this.requestId, item));
      const pending = this.#nested('context.invokeMany').startCalls(this.requestId, 'context.invokeMany', messages);
      return Promise.all(pending.map((p) => p.catch((err) => err)));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #nested(where) {
    if (this.#calls === null) throw new Error(`${where}: nested calls need a worker (this context was made outside one)`);
    return this.#calls;
  }
}

for (const name of ['HearthError', 'HearthInvokeError']) {
  Object.defineProperty(Context.prototype, name, {
    get() {
      return hearth()[name];
    },
    configurable: true,
  });
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

const SHIM_FILES = [__filename, path.join(__dirname, 'codec.js'), path.join(__dirname, 'hearth.js')];

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

/**
 * `error` message for something thrown by the user's code (any value may be
 * thrown). With `codes` (an invoke's answer), an error marked as hearth's
 * (HearthError) sends its `code` (PROTOCOL.md, "Error codes"); one whose code
 * is not valid is sent without it, its message saying why.
 */
function errorMessage(id, err, codes = false) {
  if (err instanceof Error || (err !== null && typeof err === 'object' && typeof err.message === 'string')) {
    const frame = {
      t: 'error',
      id,
      kind: typeof err.name === 'string' && err.name ? err.name : 'Error',
      message: String(err.message),
      traceback: userStack(err),
    };
    if (codes) {
      let marked = false;
      let code;
      try {
        marked = err[HEARTH_ERROR] === true;
        code = marked ? err.code : undefined;
      } catch {
        marked = false; // a getter (or a Proxy) of the function's own threw: a plain error
      }
      if (marked) {
        const problem = codeProblem(code);
        if (problem === null) frame.code = code;
        else frame.message = invalidCodeMessage(describe(code), problem, frame.message);
      }
    }
    return frame;
  }
  let text;
  try {
    text = typeof err === 'string' ? err : JSON.stringify(err) ?? String(err);
  } catch {
    text = String(err);
  }
  return { t: 'error', id, kind: 'Error', message: text, traceback: '' };
}

// What an error code may be (PROTOCOL.md, "Error codes").
const MAX_CODE = 64;
const CODE_RULE = `an error code is 1 to ${MAX_CODE} characters matching [A-Za-z][A-Za-z0-9_.-]*`;

/** Why `code` cannot be sent as an error code, or null when it can. */
function codeProblem(code) {
  if (typeof code !== 'string') return `it is ${code === null ? 'null' : `a ${typeof code}`}, not a string`;
  if (code === '') return 'it is empty';
  if (code.length > MAX_CODE) return `it is ${code.length} characters long`;
  if (!/^[A-Za-z]/.test(code)) return 'it does not start with a letter';
  const bad = code.match(/[^A-Za-z0-9_.-]/gu);
  if (bad !== null) return `it contains ${[...new Set(bad)].map((c) => JSON.stringify(c)).join(', ')}`;
  return null;
}

/** The message of an error sent without its code, because the code is not valid. */
function invalidCodeMessage(shown, problem, text) {
  return (
    `invalid error code ${shown} (${problem}): ${CODE_RULE}, so this error is sent without one; ` +
    `raise a code declared in hearth.toml as [errors.CODE]${text ? `; its message: ${text}` : ''}`
  );
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

// ------------------------------------------------------ user and tmp dir

/** The {uid, gid} that `load` asks the worker to run as, or null; throws ProtocolError. */
function loadIdentity(load) {
  if (load.uid === undefined && load.gid === undefined) return null;
  for (const name of ['uid', 'gid']) {
    const value = load[name];
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
      const shown = value === undefined ? 'none' : JSON.stringify(value);
      throw new ProtocolError(`load has ${name} ${shown}; the daemon sends uid and gid together, as unsigned 32-bit integers`);
    }
  }
  return { uid: load.uid, gid: load.gid };
}

/**
 * Become uid/gid for good, before any of the function's code runs: no
 * supplementary groups, then the group, then the user; then check that root
 * cannot be regained. Nothing to do when the worker already runs as them (a
 * daemon that is not root, or one that switched at spawn). Throws
 * PermissionError.
 *
 * The kernel clears the parent-death signal when the effective ids change,
 * and Node cannot set it again (no prctl): see PROTOCOL.md.
 */
function switchUser(uid, gid) {
  if (process.getuid() === uid && process.geteuid() === uid && process.getgid() === gid && process.getegid() === gid) return;
  const was = `uid ${process.geteuid()} gid ${process.getegid()}`;
  let step = 'setgroups([])';
  try {
    process.setgroups([]);
    step = `setgid(${gid})`;
    process.setgid(gid);
    step = `setuid(${uid})`;
    process.setuid(uid);
  } catch (err) {
    const why = err && err.code ? err.code : String(err && err.message);
    throw new PermissionError(`cannot switch the worker from ${was} to uid ${uid} gid ${gid}: ${step} failed (${why}); ${SWITCH_ADVICE}`);
  }
  let problem = null;
  // Node's getgroups() adds the effective gid when the list lacks it.
  const groups = process.getgroups().filter((g) => g !== gid);
  if (process.getuid() !== uid || process.geteuid() !== uid || process.getgid() !== gid || process.getegid() !== gid || groups.length > 0) {
    problem = `the worker runs as uid ${process.geteuid()} gid ${process.getegid()} groups ${process.getgroups()} after the switch`;
  } else if (uid !== 0) {
    try {
      process.setuid(0);
      problem = 'setuid(0) still succeeds after the switch';
    } catch {
      // as it should be
    }
  }
  if (problem !== null) {
    throw new PermissionError(
      `switching to uid ${uid} gid ${gid} did not hold (${problem}), so the function is not run; ` +
        'the interpreter must not carry file capabilities (check with getcap) nor be started with ambient capabilities',
    );
  }
}

/** Point os.tmpdir() (and the function's child processes) at `tmp`. */
function useTempDir(tmp) {
  process.env.TMPDIR = tmp;
  process.env.TMP = tmp;
  process.env.TEMP = tmp;
}

/** chdir to the code directory, with an error that says what to do when it is not reachable. */
function enterCodeDir(dir) {
  try {
    process.chdir(dir);
  } catch (err) {
    if (err && (err.code === 'EACCES' || err.code === 'EPERM')) {
      throw new PermissionError(
        `cannot enter the code directory ${dir} as uid ${process.geteuid()} gid ${process.getegid()} (${err.code}); ` +
          'the daemon must make it and every directory above it searchable by that user or group',
      );
    }
    throw err;
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

// Whether the function's code is given ./hearth.js for 'hearth' yet.
let hearthForRequire = false;
let hearthForImport = false;

/**
 * Make `require('hearth')` give the function ./hearth.js (HearthError,
 * HearthInvokeError) when it resolves to nothing else: a function that
 * ships a node_modules/hearth of its own keeps it. Done at load, by
 * wrapping the CommonJS resolver (no cost at start-up, none for other
 * modules beyond one string comparison).
 */
function provideHearthToRequire() {
  if (hearthForRequire) return;
  hearthForRequire = true;
  const Module = require('module');
  const resolve = Module._resolveFilename;
  // The path require('./hearth') caches the module under (a real path), so
  // that the function gets the very classes the worker uses.
  const file = require.resolve('./hearth');
  if (typeof resolve !== 'function') return;
  Module._resolveFilename = function resolveFilename(request, ...rest) {
    if (request !== 'hearth') return resolve.call(this, request, ...rest);
    try {
      return resolve.call(this, request, ...rest);
    } catch (err) {
      if (err && err.code === 'MODULE_NOT_FOUND') return file;
      throw err;
    }
  };
}

/** An import of 'hearth' in an ES module's source (static or dynamic). */
const IMPORTS_HEARTH = /\b(?:from|import)\s*\(?\s*['"]hearth['"]/;

/**
 * The same for `import ... from 'hearth'` in ES modules, which do not use
 * the CommonJS resolver: a resolve hook, registered before an ES entry is
 * imported. Node's in-thread module.registerHooks (22.15 and later) costs
 * nothing much; the module.register of older versions runs its hooks on a
 * thread of its own, which adds tens of milliseconds to the load, so it is
 * registered only when the entry's own source imports 'hearth'.
 */
function provideHearthToImport(file) {
  if (hearthForImport) return;
  const Module = require('module');
  if (typeof Module.registerHooks !== 'function') {
    let source = '';
    try {
      source = fs.readFileSync(file, 'utf8');
    } catch {
      // import() reports it
    }
    if (!IMPORTS_HEARTH.test(source)) return;
  }
  hearthForImport = true;
  const { pathToFileURL } = require('url');
  const url = pathToFileURL(require.resolve('./hearth')).href;
  if (typeof Module.registerHooks === 'function') {
    Module.registerHooks({
      resolve(specifier, context, next) {
        if (specifier !== 'hearth') return next(specifier, context);
        try {
          return next(specifier, context);
        } catch (err) {
          if (err && (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND')) {
            return { url, format: 'commonjs', shortCircuit: true };
          }
          throw err;
        }
      },
    });
    return;
  }
  if (typeof Module.register !== 'function') return; // Node before 20.6: require('hearth') only
  const hooks =
    'export async function resolve(specifier, context, next) {\n' +
    "  if (specifier !== 'hearth') return next(specifier, context);\n" +
    '  try {\n' +
    '    return await next(specifier, context);\n' +
    '  } catch (err) {\n' +
    "    if (err && err.code === 'ERR_MODULE_NOT_FOUND') {\n" +
    `      return { url: ${JSON.stringify(url)}, format: 'commonjs', shortCircuit: true };\n` +
    '    }\n' +
    '    throw err;\n' +
    '  }\n' +
    '}\n';
  Module.register(`data:text/javascript,${encodeURIComponent(hooks)}`);
}

/** Import an ES module (a promise of its namespace). */
function importModule(file) {
  const { pathToFileURL } = require('url');
  provideHearthToImport(file);
  return import(pathToFileURL(file).href).catch((err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND' && !hearthForImport && /\bpackage 'hearth'/.test(String(err.message))) {
      err.message +=
        "; the worker gives 'hearth' to ES modules when the entry module itself imports it: import it in " +
        `${path.basename(file)} too, or use context.HearthError`;
    }
    throw err;
  });
}

/**
 * Load a module: require() for CommonJS, import() for ES modules (.mjs, or a
 * .js that a package.json declares "type": "module"). Returns the exports, or
 * a promise of them.
 */
function loadModule(file) {
  provideHearthToRequire();
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
  call(id, event, deadlineMs, calls = null) {
    if (this.oneArg) return this.handler.call(this.holder, event);
    const context = new Context(id, this.name, this.version, this.memoryMb, deadlineMs, calls);
    return this.handler.call(this.holder, event, context);
  }
}

// ---------------------------------------------------------------- worker

const END_OF_INPUT = Symbol('end of input');

/** Run the handler (the callback of AsyncLocalStorage.run: no closure per call). */
function callHandler(fn, id, event, deadlineMs, calls) {
  return fn.call(id, event, deadlineMs, calls);
}

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
    this.busy = false; // a load is running: the messages after it wait for its answer
    this.stopping = false; // no more messages are taken
    this.exited = false;
    this.exitCode = 0;
    this.refused = null; // why an earlier load could not switch users: this worker loads nothing
    // While an async load runs: fail(err) ends it with an error (used for
    // uncaught exceptions and unhandled rejections meanwhile).
    this.loading = null;
    // Invokes whose handler returned a promise that has not settled yet.
    this.inflight = new Set();
    // Once calls overlap, each one's record is the store of `calls` in its
    // handler's async context, so that an uncaught exception or unhandled
    // rejection can name its call. Not before: tracking async context makes
    // every promise the function creates slower (about 2x per await), which
    // a worker that gets one call at a time has no reason to pay.
    this.calls = new AsyncLocalStorage();
    this.tracking = false;
    this.flushing = 0; // answers waiting for stdout/stderr to drain
    // Nested calls (PROTOCOL.md, "Nested calls"): the invokes not yet
    // answered, each with the ids of its calls waiting for a call_result,
    // and those calls by id.
    this.running = new Map();
    this.pendingCalls = new Map();
    this.callSeq = 0;
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

  /** Act on one message; returns a promise when the messages after it must wait (a load). */
  handle(message) {
    if (message === END_OF_INPUT) return this.stop(0, true);
    const kind = message.t;
    const id = message.id === undefined ? '' : message.id;
    switch (kind) {
      case 'invoke':
        this.invoke(id, message);
        return undefined;
      case 'load':
        return this.load(id, message);
      case 'ping':
        return this.send({ t: 'pong', id });
      case 'shutdown':
        return this.stop(0, true);
      case 'call_result':
        return this.callResult(message);
      case 'cancel':
        return undefined; // reserved: ignored in protocol version 1
      default:
        return this.send(shimError(id, 'ProtocolError', `unknown message type "${kind}"`));
    }
  }

  /**
   * Stop taking messages and exit with `code`: with `wait`, once every call
   * in flight is answered (shutdown, end of input); otherwise at once.
   */
  stop(code, wait = false) {
    if (this.exited) return;
    this.stopping = true;
    this.exitCode = code;
    if (wait && (this.inflight.size > 0 || this.flushing > 0)) return; // drained() exits
    this.exited = true;
    this.exit(code);
  }

  /** After an answer while stopping: exit when it was the last one. */
  drained() {
    if (!this.exited && this.inflight.size === 0 && this.flushing === 0) {
      this.exited = true;
      this.exit(this.exitCode);
    }
  }

  /** Run `work()` (which returns a thenable) until it settles or `loading.fail` is called. */
  track(work, onValue, onError) {
    return new Promise((resolve) => {
      let settled = false;
      const settle = (fn, arg) => {
        if (settled) return;
        settled = true;
        this.loading = null;
        let after;
        try {
          after = fn(arg);
        } finally {
          // the next message waits for the answer to be out, never on a failure here
          if (after instanceof Promise) after.then(resolve, resolve);
          else resolve();
        }
      };
      this.loading = { fail: (err) => settle(onError, err) };
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
    if (this.refused !== null) return this.send(shimError(id, 'PermissionError', this.refused));
    if (typeof message.dir !== 'string' || typeof message.entry !== 'string') {
      return this.send(shimError(id, 'ProtocolError', 'load needs string fields `dir` and `entry`'));
    }
    const tmp = message.tmp;
    if (tmp !== undefined && typeof tmp !== 'string') {
      return this.send(shimError(id, 'ProtocolError', `load has tmp ${JSON.stringify(tmp)}; it must be a string (a directory path)`));
    }
    let identity;
    try {
      identity = loadIdentity(message);
    } catch (err) {
      return this.send(shimError(id, 'ProtocolError', err.message));
    }
    const started = performance.now();
    // A worker may be started before it knows its function (a generic worker,
    // started as root): first it becomes the function's user, so that nothing
    // below (the directory change, the import) runs as root...
    if (identity !== null) {
      try {
        switchUser(identity.uid, identity.gid);
      } catch (err) {
        this.refused = `an earlier load could not switch users (${err.message}); start a new worker`;
        return this.send(shimError(id, 'PermissionError', err.message));
      }
    }
    let target;
    let exports;
    try {
      // ...then it takes the function's environment and temporary directory.
      if (message.env && typeof message.env === 'object') {
        for (const [key, value] of Object.entries(message.env)) process.env[key] = String(value);
      }
      if (tmp) useTempDir(tmp);
      enterCodeDir(message.dir);
      target = resolveEntry(message.dir, message.entry);
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

  /**
   * Start the handler. It does not hold up the messages after it: a handler
   * that returns a promise is answered when it settles, with its own id,
   * whatever else started meanwhile.
   */
  invoke(id, message) {
    if (this.fn === null) {
      this.send(shimError(id, 'ProtocolError', 'invoke before load'));
      return;
    }
    const event = message.payload === undefined ? null : message.payload;
    const deadlineMs = message.deadline_ms === undefined ? 0 : Number(message.deadline_ms);
    if (!this.tracking && this.inflight.size > 0) this.tracking = true; // for good
    let call = null;
    let value;
    let thenable;
    this.running.set(id, null);
    try {
      if (this.tracking) {
        call = { id, fail: null };
        value = this.calls.run(call, callHandler, this.fn, id, event, deadlineMs, this);
      } else {
        value = this.fn.call(id, event, deadlineMs, this);
      }
      thenable = isThenable(value);
    } catch (err) {
      this.finished(id);
      this.answerCall(encodeFrame(errorMessage(id, err, true)));
      return;
    }
    if (!thenable) {
      this.finished(id);
      this.answerCall(resultFrame(id, value));
      return;
    }
    if (call === null) call = { id, fail: null };
    this.inflight.add(call);
    const settle = (ok, outcome) => {
      if (!this.inflight.delete(call)) return; // already failed by an uncaught exception
      this.finished(id);
      this.answerCall(ok ? resultFrame(id, outcome) : encodeFrame(errorMessage(id, outcome, true)));
    };
    call.fail = (err) => settle(false, err);
    Promise.resolve(value).then(
      (result) => settle(true, result),
      (err) => settle(false, err),
    );
  }

  /**
   * Send the `call`s of `messages` (checked, without ids) for invoke
   * `parent`, all in one write; returns a promise per call, settled by its
   * call_result. Throws when `parent` was already answered, or a TypeError
   * when an event cannot be sent (then none is sent).
   */
  startCalls(parent, where, messages) {
    if (!this.running.has(parent)) {
      throw new Error(`${where}: request ${parent} has already been answered; make nested calls before the handler returns`);
    }
    const frames = [];
    const ids = [];
    for (let i = 0; i < messages.length; i++) {
      this.callSeq += 1;
      const id = `c${this.callSeq}`;
      messages[i].id = id;
      try {
        frames.push(encodeFrame(messages[i]));
      } catch (err) {
        const which = messages.length > 1 ? ` (item ${i})` : '';
        throw new TypeError(`${where}: the event for ${messages[i].function}${which} cannot be sent: ${err.message}`);
      }
      ids.push(id);
    }
    let mine = this.running.get(parent);
    if (mine === null) {
      mine = new Set();
      this.running.set(parent, mine);
    }
    const promises = messages.map(
      (message) =>
        new Promise((resolve, reject) => {
          this.pendingCalls.set(message.id, { resolve, reject, parent, function: message.function });
          mine.add(message.id);
        }),
    );
    this.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
    return promises;
  }

  /** A call_result: settle its call; one whose id is unknown (its invoke ended) is ignored. */
  callResult(message) {
    const pending = this.pendingCalls.get(message.id);
    if (pending === undefined) return;
    this.pendingCalls.delete(message.id);
    const mine = this.running.get(pending.parent);
    if (mine) mine.delete(message.id);
    if (message.ok === true) pending.resolve(message.value === undefined ? null : message.value);
    else pending.reject(hearth().HearthInvokeError.fromWire(message.error, pending.function));
  }

  /**
   * Invoke `id` is answered: forget its calls still waiting. Their promises
   * never settle (the daemon sends no call_result for them), so nothing
   * rejects after the handler is done.
   */
  finished(id) {
    const mine = this.running.get(id);
    this.running.delete(id);
    if (mine) for (const callId of mine) this.pendingCalls.delete(callId);
  }

  /** Send an invoke's answer (after the logs: see answer) and note when the last one is out. */
  answerCall(frame) {
    const flushed = this.answer(frame);
    if (flushed !== undefined) {
      this.flushing += 1;
      flushed.then(() => {
        this.flushing -= 1;
        if (this.stopping) this.drained();
      });
    } else if (this.stopping) {
      this.drained();
    }
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

  /**
   * An exception nobody caught (or a rejection nobody handled). It fails the
   * call whose async context it was raised in; raised elsewhere (or in a call
   * started before calls overlapped, whose context is not tracked), it fails
   * every call in flight; with none in flight, the worker exits 1.
   */
  uncaught(err, origin) {
    const what = origin === 'unhandledRejection' ? 'unhandled promise rejection' : 'uncaught exception';
    const stack = userStack(err) || String(err);
    if (this.loading !== null) {
      logError(`${what} while the code loaded; it fails the load:\n${stack}`);
      this.loading.fail(err);
      return;
    }
    const own = this.calls.getStore();
    if (own !== undefined && this.inflight.has(own)) {
      logError(`${what} while a request ran; it fails that request (${own.id}):\n${stack}`);
      own.fail(err);
      return;
    }
    if (this.inflight.size > 0) {
      const calls = [...this.inflight];
      const ids = calls.map((call) => call.id).join(', ');
      if (calls.length === 1) logError(`${what} while a request ran; it fails that request (${ids}):\n${stack}`);
      else logError(`${what} from code of none of the ${calls.length} requests in flight; it fails them all (${ids}):\n${stack}`);
      for (const call of calls) call.fail(err);
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

/**
 * Compile what a load and a call run first, before the first load arrives:
 * V8 compiles a function when it is first called, which put 2-3 ms of
 * compiling (the codec's decoder, the answer's encoder) and the lazy
 * set-up of process.stdout and stderr on a generic worker's first call.
 * Run once at start, on made-up frames; it sends nothing.
 */
function warmUp() {
  // Shaped like the daemon's: long paths, 32-bit ids, a map of variables.
  const load = {
    t: 'load',
    id: 'load',
    dir: '/var/lib/hearth/code/warm-up-function/v12-0123456789ab',
    entry: 'main.handler',
    function: 'warm-up-function',
    version: 12,
    timeout_ms: 30000,
    memory_mb: 128,
    env: { HEARTH_FUNCTION: 'warm-up-function', HEARTH_VERSION: '12', HEARTH_DEPS: '/var/lib/hearth/deps/0123456789abcdef' },
    uid: 1500012,
    gid: 1500012,
    tmp: '/var/lib/hearth/tmp/w-1234-0123456789abcdef',
  };
  const invoke = {
    t: 'invoke',
    id: '0123456789abcdef',
    deadline_ms: Date.now(),
    payload: { name: 'Ada', list: [1, 2.5, true, null] },
  };
  // Through a stream, as frames arrive from the daemon's pipe.
  const { Readable } = require('stream');
  const reader = new FrameReader(() => {});
  const stream = new Readable({ read() {} });
  stream.on('data', (chunk) => reader.push(chunk));
  for (let i = 0; i < 4; i += 1) {
    stream.push(encodeFrame(load));
    stream.push(encodeFrame(invoke));
    encodeFrame({ t: 'loaded', id: 'warm-up', load_ms: new codec.Float64(1.5) });
    encodeFrame({ t: 'result', id: 'warm-up', value: { greeting: 'Hello, Ada!', list: [1, 2.5, 'x'] } });
  }
  // One call, on a worker of its own that sends nowhere: the invoke path
  // (a context, an async handler's settling, the result's frame).
  const rehearsal = new Worker(
    () => {},
    () => {},
    () => [],
  );
  rehearsal.fn = new LoadedFunction(load, null, async (event, context) => ({
    greeting: `Hello, ${event.name}!`,
    left: context.getRemainingTimeInMillis(),
  }));
  rehearsal.enqueue(invoke);
  // Made on first use: their set-up is part of a load's answer otherwise.
  for (const stream of [process.stdout, process.stderr]) void stream.writableLength;
  // The module loader: `module` compiled, the resolver wrapped for
  // require('hearth'), and one module of the shim's own (./hearth.js, which
  // errors and require('hearth') use) through resolve, read and compile.
  provideHearthToRequire();
  try {
    resolveEntry(__dirname, 'hearth.HearthError');
  } catch {
    // not there: nothing to warm
  }
  hearth();
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
  warmUp();

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

// Handlers reach the error class as context.HearthInvokeError, or as a global
// (for `instanceof` in code that has no context at hand).
// (Loaded on first use; assigning the global replaces it as before.)
Object.defineProperty(globalThis, 'HearthInvokeError', {
  get() {
    return hearth().HearthInvokeError;
  },
  set(value) {
    Object.defineProperty(globalThis, 'HearthInvokeError', { value, writable: true, configurable: true, enumerable: false });
  },
  configurable: true,
  enumerable: false,
});

module.exports = {
  PROTOCOL,
  get HearthError() {
    return hearth().HearthError;
  },
  get HearthInvokeError() {
    return hearth().HearthInvokeError;
  },
  MAX_FRAME,
  ProtocolError,
  EntryNotFound,
  PermissionError,
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
