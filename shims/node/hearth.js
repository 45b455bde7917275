'use strict';
// What `require('hearth')` gives a function's code in a hearth Node worker
// (and `import ... from 'hearth'` in an ES module), unless the function ships
// a `hearth` package of its own in node_modules: the error classes.
//
//   const { HearthError } = require('hearth');
//   throw new HearthError('NOT_FOUND', 'no program 42');
//
// The worker (hearth_worker.js) uses the same classes, and gives them to
// handlers as context.HearthError and context.HearthInvokeError too.

/**
 * Marks an error whose `code` is one of the function's own error codes
 * (PROTOCOL.md, "Error codes"). HearthError has it; another class (a
 * library's) may set `[Symbol.for('hearth.error')] = true` on its prototype
 * and a string `code` to be sent the same way.
 */
const HEARTH_ERROR = Symbol.for('hearth.error');

/**
 * An error the function throws with one of its own error codes, declared in
 * its hearth.toml as [errors.CODE]. `code` must be a non-empty string;
 * `message` (optional) says what happened. The worker sends the code in its
 * `error` frame; `name` is the class's name (a subclass keeps its own).
 */
class HearthError extends Error {
  constructor(code, message) {
    if (typeof code !== 'string') {
      const shown = code === null ? 'null' : typeof code;
      throw new TypeError(`HearthError: the error code must be a string naming one of the function's error codes ([errors.CODE] in hearth.toml), not ${shown}`);
    }
    if (code === '') {
      throw new TypeError("HearthError: the error code is empty; name one of the function's error codes ([errors.CODE] in hearth.toml)");
    }
    super(message === undefined || message === null ? '' : String(message));
    this.code = code;
  }

  get name() {
    const own = this.constructor && this.constructor.name;
    return typeof own === 'string' && own !== '' ? own : 'HearthError';
  }
}

Object.defineProperty(HearthError.prototype, HEARTH_ERROR, { value: true });

/**
 * A nested call that did not give a value: refused by the daemon, or the
 * callee failed. `code` is an error code of docs/API.md (`function_error`,
 * `timeout`, `function_not_found`, `queue_full`, ...) or a nested-call one
 * (`recursion`, `chain_too_deep`, `budget_exhausted`, `deadline_exceeded`).
 * `error` is {type, message, traceback} of the callee's own exception when
 * `code` is `function_error`, else null. `retryable` is true when the call
 * was refused before it ran (the caller may try again; hearth never does).
 */
class HearthInvokeError extends Error {
  constructor(fields = {}) {
    super(typeof fields.message === 'string' ? fields.message : '');
    this.code = typeof fields.code === 'string' ? fields.code : 'unknown';
    this.function = fields.function === undefined ? null : fields.function;
    this.version = fields.version === undefined ? null : fields.version;
    this.requestId = fields.requestId === undefined ? null : fields.requestId;
    this.retryable = fields.retryable === true;
    this.error = fields.error === undefined ? null : fields.error;
  }

  get name() {
    return 'HearthInvokeError';
  }

  /** From the `error` map of a `call_result` (PROTOCOL.md, "Nested calls"). */
  static fromWire(wire, functionName) {
    const map = wire !== null && typeof wire === 'object' && !Array.isArray(wire) ? wire : {};
    const text = (v) => (typeof v === 'string' ? v : null);
    const code = text(map.code) || 'unknown';
    const message = text(map.message) ?? `nested call to ${functionName} failed (${code})`;
    let error = null;
    if (code === 'function_error') {
      const type = text(map.kind) || 'Error';
      error = { type, message: calleeMessage(message, type), traceback: text(map.traceback) ?? '' };
    }
    return new HearthInvokeError({
      code,
      message,
      function: text(map.function) ?? functionName,
      version: Number.isInteger(map.version) ? map.version : null,
      requestId: text(map.request_id),
      retryable: map.retryable === true,
      error,
    });
  }
}

/**
 * The callee's own exception message: the daemon's message reads
 * "<function>@<version> raised <Kind>: <message>"; anything else is kept whole.
 */
function calleeMessage(message, kind) {
  const marker = ` raised ${kind}: `;
  const at = message.indexOf(marker);
  return at >= 0 ? message.slice(at + marker.length) : message;
}

module.exports = { HearthError, HearthInvokeError, HEARTH_ERROR };
