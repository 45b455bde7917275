'use strict';
// @hearth/sdk: a client for hearth's HTTP API (docs/API.md). The Client
// knows hearth's operations, results and retry policy; how a request
// travels is its transport's business (lib/http-transport.cjs).

const errors = require('./lib/errors.cjs');
const { HttpTransport, parseServerTiming } = require('./lib/http-transport.cjs');
const { parseAddr, findToken, DEFAULT_ADDR } = require('./lib/address.cjs');
const { readBundle, filesFromList } = require('./lib/bundle.cjs');

const { HearthError, RETRYABLE, CallNotFoundError } = errors;

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_DEPLOY_TIMEOUT_MS = 600_000;
const DEFAULT_RETRIES = 2;
const DEFAULT_MAX_RETRY_WAIT_MS = 10_000;
const DEFAULT_LOG_WAIT_MS = 5_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const seg = (s) => encodeURIComponent(String(s));

/** `name`, `name@version` or `name@alias` of a call (`what`: invoke, page). */
function targetOf(what, kind, name, options) {
  if (typeof name !== 'string' || !name) throw new TypeError(`${what}: name must be ${kind}`);
  if (options.version != null && options.alias != null) {
    throw new TypeError(`${what}: give version or alias, not both`);
  }
  let target = seg(name);
  if (options.version != null) target += `@${seg(options.version)}`;
  else if (options.alias != null) target += `@${seg(options.alias)}`;
  return target;
}

/** Whether `e` is a refusal of a call that did not run, with a Retry-After. */
function isRetryable(e) {
  return (
    e instanceof HearthError &&
    RETRYABLE.has(e.code) &&
    (e.status === 429 || e.status === 503) &&
    typeof e.retryAfter === 'number'
  );
}

/** `10m`, `2h`, `30s`, `500ms`, `1d` -> milliseconds. */
function durationMs(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(text);
  if (!m) throw new TypeError(`since: ${JSON.stringify(text)} is not a duration like 10m, 2h or 30s`);
  const unit = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2]];
  return Number(m[1]) * unit;
}

function sinceMs(since) {
  if (since === undefined || since === null) return undefined;
  if (since instanceof Date) return since.getTime();
  if (typeof since === 'number') return since;
  if (typeof since === 'string') return Date.now() - durationMs(since);
  throw new TypeError('since must be a Date, milliseconds since the epoch, or a duration like "10m"');
}

class Client {
  /**
   * @param {object} [options]
   * @param {string} [options.addr]       HEARTH_ADDR, else http://127.0.0.1:7700
   * @param {string|null} [options.token] HEARTH_TOKEN, else a local daemon's admin.token
   * @param {number} [options.timeoutMs]  per request (60 s; deploys 10 min)
   * @param {number} [options.retries]    retries of refused calls (2)
   */
  constructor(options = {}) {
    const addrText = options.addr || process.env.HEARTH_ADDR || DEFAULT_ADDR;
    this.addr = parseAddr(addrText);
    this.token =
      options.token !== undefined
        ? options.token
        : findToken({ local: options.localToken !== false, addr: this.addr.href });
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.retries = options.retries ?? DEFAULT_RETRIES;
    this.maxRetryWaitMs = options.maxRetryWaitMs ?? DEFAULT_MAX_RETRY_WAIT_MS;
    this.transport =
      options.transport ||
      new HttpTransport({
        addr: this.addr,
        token: this.token,
        ca: options.ca,
        idleSocketMs: options.idleSocketMs,
        maxSockets: options.maxSockets,
      });
  }

  /** The address requests go to, as a URL. */
  get address() {
    return this.addr.href;
  }

  /** Close idle keep-alive connections (the process may then exit). */
  close() {
    this.transport.close();
  }

  /**
   * Run `attempt` again while hearth refuses it before it ran (429/503
   * with Retry-After and a code of RETRYABLE), at most `retries` times.
   */
  async withRetries(retries, attempt) {
    for (let n = 1; ; n++) {
      try {
        const out = await attempt();
        return { out, attempts: n };
      } catch (e) {
        const wait = isRetryable(e) ? e.retryAfter * 1000 : Infinity;
        if (n > retries || wait > this.maxRetryWaitMs) {
          if (e instanceof HearthError) e.attempts = n;
          throw e;
        }
        // Retry-After is whole seconds; a little jitter spreads the retries
        // of many clients refused at once.
        await sleep(Math.max(wait, 50) + Math.floor(Math.random() * 100));
      }
    }
  }

  async api(method, path, { query, body, timeoutMs, retries } = {}) {
    const { out } = await this.withRetries(retries ?? this.retries, () =>
      this.transport.request({
        method,
        path,
        query,
        body,
        timeoutMs: timeoutMs ?? this.timeoutMs,
      }),
    );
    return out;
  }

  // ---- calling functions ----

  /**
   * Call `name` (its live version, `version`, or `alias`) with `event`.
   * @returns {Promise<object>} {value, function, version, requestId, durationMs, cold, ...}
   */
  async invoke(name, event = {}, options = {}) {
    const target = targetOf('invoke', 'a function name', name, options);
    const { out, attempts } = await this.withRetries(options.retries ?? this.retries, () =>
      this.transport.call({
        target,
        event,
        requestId: options.requestId,
        log: Boolean(options.log),
        timeoutMs: options.timeoutMs ?? this.timeoutMs,
      }),
    );
    const result = {
      value: out.value,
      function: out.function,
      version: out.version,
      requestId: out.requestId,
      durationMs: out.durationMs,
      cold: out.start == null ? null : out.start !== 'warm',
      start: out.start,
      timing: out.timing,
      attempts,
    };
    if (options.log) {
      result.logTail = out.logTail;
      result.log = null;
      result.record = null;
      try {
        const record = await this.waitForRecord(out.requestId, options.logWaitMs ?? DEFAULT_LOG_WAIT_MS);
        result.record = record;
        result.log = record ? record.log || [] : null;
      } catch (e) {
        result.logError = e;
      }
    }
    return result;
  }

  /**
   * Call the page `name` (its live version, `version`, or `alias`) with
   * `request`: every field filled by its function.
   * @returns {Promise<object>} {data, errors, page, version, requestId, durationMs, timing, attempts}
   *   `errors`: [{field, code, function, version, message, fallback}] for
   *   each field that failed or was late. A required field that fails
   *   throws FieldFailedError / FieldTimeoutError (`err.field` names it).
   */
  async page(name, request = {}, options = {}) {
    const target = targetOf('page', 'a page name', name, options);
    const { out, attempts } = await this.withRetries(options.retries ?? this.retries, () =>
      this.transport.call({
        target,
        event: request,
        requestId: options.requestId,
        timeoutMs: options.timeoutMs ?? this.timeoutMs,
        page: true,
      }),
    );
    const value = out.value && typeof out.value === 'object' ? out.value : {};
    return {
      data: value.data ?? {},
      errors: Array.isArray(value.errors) ? value.errors : [],
      page: out.function,
      version: out.version,
      requestId: out.requestId,
      durationMs: out.durationMs,
      timing: out.timing,
      attempts,
    };
  }

  /** The call record of `requestId`, polled until written (or null). */
  async waitForRecord(requestId, waitMs) {
    const end = Date.now() + waitMs;
    let pause = 25;
    for (;;) {
      try {
        return await this.call(requestId);
      } catch (e) {
        if (!(e instanceof CallNotFoundError)) throw e;
        if (Date.now() + pause > end) return null;
      }
      await sleep(pause);
      pause = Math.min(pause * 2, 250);
    }
  }

  // ---- management ----

  /** GET /api/v1/health */
  health() {
    return this.api('GET', '/api/v1/health');
  }

  /** Every function (GET /api/v1/functions), as an array. */
  async functions() {
    return (await this.api('GET', '/api/v1/functions')).functions;
  }

  /** One function. */
  function(name) {
    return this.api('GET', `/api/v1/functions/${seg(name)}`);
  }

  /** {function, live_version, versions: [...]} */
  versions(name) {
    return this.api('GET', `/api/v1/functions/${seg(name)}/versions`);
  }

  /** The release history, newest first, as an array. */
  async releases(name) {
    return (await this.api('GET', `/api/v1/functions/${seg(name)}/releases`)).releases;
  }

  /**
   * Store a function directory (or a list of files) as a version, and
   * publish it unless `publish: false`.
   */
  async deploy(source, options = {}) {
    const files = Array.isArray(source) ? filesFromList(source) : readBundle(String(source));
    return this.api('POST', '/api/v1/deploy', {
      body: {
        files,
        message: options.message ?? '',
        publish: options.publish ?? true,
        allow_breaking: options.allowBreaking ?? false,
      },
      timeoutMs: options.timeoutMs ?? Math.max(this.timeoutMs, DEFAULT_DEPLOY_TIMEOUT_MS),
    });
  }

  /** Make `version` live. */
  publish(name, version, options = {}) {
    return this.api('POST', `/api/v1/functions/${seg(name)}/publish`, {
      body: { version, message: options.message ?? '', allow_breaking: options.allowBreaking ?? false },
      timeoutMs: options.timeoutMs,
    });
  }

  /** Make the previously live version live again. */
  rollback(name, options = {}) {
    return this.api('POST', `/api/v1/functions/${seg(name)}/rollback`, {
      body: { message: options.message ?? '' },
      timeoutMs: options.timeoutMs,
    });
  }

  /** The aliases of `name`, as an array. */
  async aliases(name) {
    return (await this.api('GET', `/api/v1/functions/${seg(name)}/aliases`)).aliases;
  }

  /** Create or move an alias: {version, split?: {version, weight}, message?}. */
  async setAlias(name, alias, options) {
    if (!options || options.version == null) throw new TypeError('setAlias: options.version is needed');
    const body = { version: options.version, message: options.message ?? '' };
    if (options.split) body.split = options.split;
    return this.api('PUT', `/api/v1/functions/${seg(name)}/aliases/${seg(alias)}`, { body });
  }

  /**
   * Call records of `name`, newest first: {function, calls, last_seq, dropped}.
   * since: Date, ms since the epoch, or a duration ("10m"); status: "ok"|"error".
   */
  logs(name, options = {}) {
    return this.api('GET', `/api/v1/functions/${seg(name)}/calls`, {
      query: {
        since_ms: sinceMs(options.since),
        request_id: options.requestId,
        status: options.status,
        version: options.version,
        after_seq: options.afterSeq,
        limit: options.limit,
      },
    });
  }

  /** The call record of one request id (404 call_not_found until written). */
  call(requestId) {
    return this.api('GET', `/api/v1/calls/${seg(requestId)}`);
  }

  /** A function's call statistics; window "1m", "1h" (default), "24h" or "7d". */
  stats(name, options = {}) {
    return this.api('GET', `/api/v1/functions/${seg(name)}/stats`, {
      query: { window: options.window },
    });
  }

  /** An application's call statistics. */
  appStats(app, options = {}) {
    return this.api('GET', `/api/v1/apps/${seg(app)}/stats`, { query: { window: options.window } });
  }

  /** Pools, pre-started workers and the worker budget. */
  workers() {
    return this.api('GET', '/api/v1/workers');
  }

  /** Tokens (never their secrets), as an array. Scope admin. */
  async tokens() {
    return (await this.api('GET', '/api/v1/tokens')).tokens;
  }

  /** A new token: {token, info}; the token is shown this once. Scope admin. */
  createToken(name, options = {}) {
    return this.api('POST', '/api/v1/tokens', {
      body: { name, scopes: options.scopes ?? ['read'], apps: options.apps ?? [] },
    });
  }

  /** Revoke a token by name. Scope admin. */
  revokeToken(name) {
    return this.api('DELETE', `/api/v1/tokens/${seg(name)}`);
  }
}

module.exports = {
  Client,
  HttpTransport,
  parseAddr,
  parseServerTiming,
  isRetryable,
  ...errors,
};
module.exports.default = module.exports;
