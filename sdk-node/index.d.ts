// Types of @hearth/sdk (hand-written; the API's shapes are docs/API.md's).

/// <reference types="node" />

export interface ClientOptions {
  /** `host:port`, `http://host:port` or `https://host:port`; default HEARTH_ADDR, else http://127.0.0.1:7700. A missing port is 7700. */
  addr?: string;
  /** Bearer token; default HEARTH_TOKEN, else the admin.token of a daemon on this host that listens at addr. `null`: send none. */
  token?: string | null;
  /** Look for a local daemon's admin.token when no token is given (default true). */
  localToken?: boolean;
  /** Client-side deadline of each request, ms (default 60000; deploys at least 600000). 0: none. */
  timeoutMs?: number;
  /** How many times a call refused before it ran is sent again (default 2). */
  retries?: number;
  /** A refusal whose Retry-After is longer than this is not retried (default 10000 ms). */
  maxRetryWaitMs?: number;
  /** PEM CA certificate(s) for https; default the file named by HEARTH_CA_CERT. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Idle keep-alive connections are closed after this (default 15000 ms; hearth closes them at 30 s). */
  idleSocketMs?: number;
  /** Most connections open at once (default 64). */
  maxSockets?: number;
  /** Another transport (see Transport); default an HttpTransport to addr. */
  transport?: Transport;
}

export interface InvokeOptions {
  /** Call this version (live or not). */
  version?: number;
  /** Call the version this alias points at. */
  alias?: string;
  /** Client-side deadline of the call, ms. */
  timeoutMs?: number;
  /** Fetch the call's log from its call record (needs a token with scope read). */
  log?: boolean;
  /** How long to wait for the call record when `log` is set (default 5000 ms). */
  logWaitMs?: number;
  /** Retries of refusals for this call (default the client's). */
  retries?: number;
  /** The request id to use (1–128 of [A-Za-z0-9-_.:]). */
  requestId?: string;
}

/** Phases of a call from its Server-Timing header, ms. */
export interface ServerTiming {
  queueMs?: number;
  spawnMs?: number;
  loadMs?: number;
  runMs?: number;
  [phase: string]: number | undefined;
}

export interface LogLine {
  stream: 'stdout' | 'stderr' | string;
  time_ms: number;
  text: string;
}

export interface CallRecord {
  seq: number;
  request_id: string;
  /** A nested call's caller. */
  parent_id?: string;
  function: string;
  version: number;
  app: string;
  caller: 'http' | 'nested' | 'page' | 'trigger' | string;
  started_at_ms: number;
  duration_ms: number;
  outcome: 'ok' | 'function_error' | 'timeout' | 'out_of_memory' | 'worker_died' | 'rejected' | 'error' | string;
  /** The exact error code. */
  code: string;
  /** For `rejected`: queue_full, overloaded, app_over_budget, crash_loop, rate_limited. */
  reason?: string;
  error?: string;
  status: number;
  timing: { queue_ms: number; start: 'warm' | 'generic' | 'fresh' | string; spawn_ms: number; load_ms: number; run_ms: number };
  pid?: number;
  peak_memory_kb?: number;
  cpu_ms?: number;
  bytes_in: number;
  bytes_out: number;
  log: LogLine[];
  log_truncated: boolean;
  log_dropped_bytes: number;
  log_unattributed: boolean;
  [field: string]: unknown;
}

/** A field of a page that failed or was late (it got its fallback). */
export interface PageFieldError {
  field: string;
  /** The member's code (its own declared code, timeout, ...), deadline_exceeded or dependency_failed. */
  code: string;
  function: string;
  version: number | null;
  message: string;
  /** What the field got instead: static, stale, omit or none. */
  fallback: 'static' | 'stale' | 'omit' | 'none' | string;
}

/** A page call's answer. */
export interface PageResult<T = Record<string, unknown>> {
  /** Each field's value at its path (a fallback's where its function failed). */
  data: T;
  /** Empty when every field got its own function's value. */
  errors: PageFieldError[];
  page: string | null;
  version: number | null;
  requestId: string | null;
  durationMs: number;
  /** Server-Timing, ms: pageMs, criticalMs and `field.PATHMs` for each field. */
  timing: Record<string, number> | null;
  attempts: number;
}

export interface Result<T = unknown> {
  /** The function's return value (its JSON). */
  value: T;
  /** The function that answered (x-hearth-function). */
  function: string | null;
  /** The version that answered (x-hearth-version). */
  version: number | null;
  requestId: string | null;
  /** Measured by the client: from sending the request to the end of the answer, ms (the server's phases are in `timing`). */
  durationMs: number;
  /** The call did not find a warm worker (x-hearth-start is generic or fresh). */
  cold: boolean | null;
  /** x-hearth-start: warm, generic or fresh. */
  start: 'warm' | 'generic' | 'fresh' | string | null;
  /** Server-Timing, ms. */
  timing: ServerTiming | null;
  /** How many times the call was sent (1 + retries of refusals). */
  attempts: number;
  /** With `log`: the call's log lines from its record (null if the record was not written within logWaitMs). */
  log?: LogLine[] | null;
  /** With `log`: the last 4 KiB of the log, from the answer itself. */
  logTail?: string | null;
  /** With `log`: the call record. */
  record?: CallRecord | null;
  /** With `log`: why the record could not be read (a token without scope read, say). */
  logError?: HearthError;
}

export interface FunctionInfo {
  name: string;
  runtime: string;
  app: string;
  category: string;
  description: string;
  state: string;
  live_version: number | null;
  versions: number;
  created_at: number;
  updated_at: number;
  backoff?: { crashes: number; retry_in_ms: number; last_error: string };
  [field: string]: unknown;
}

export interface VersionInfo {
  version: number;
  hash: string;
  message: string;
  size_bytes: number;
  file_count: number;
  created_at: number;
  manifest: Record<string, unknown>;
  [field: string]: unknown;
}

export interface Versions {
  function: string;
  live_version: number | null;
  versions: VersionInfo[];
}

export interface Release {
  version: number;
  from_version: number | null;
  action: string;
  message: string;
  actor: string;
  created_at: number;
  [field: string]: unknown;
}

export interface DeployOutcome {
  function: string;
  version: number;
  /** false: the same code was already stored as this version. */
  created: boolean;
  hash: string;
  live: boolean;
  previous: number | null;
  load_ms: number | null;
  [field: string]: unknown;
}

export interface ReleaseOutcome {
  function: string;
  version: number;
  previous: number | null;
  action: string;
  [field: string]: unknown;
}

export interface Alias {
  alias: string;
  target: { version: number; split?: [number, number] | null };
  [field: string]: unknown;
}

export interface CallList {
  function: string;
  calls: CallRecord[];
  last_seq: number;
  dropped: number;
}

export interface Stats {
  window: string;
  since: number;
  calls: number;
  ok: number;
  errors: Record<string, number>;
  success_rate: number | null;
  rejected: number;
  p50_ms: number | null;
  p90_ms: number | null;
  p99_ms: number | null;
  mean_ms: number | null;
  max_ms: number | null;
  cold_starts: number;
  cold_start_ratio: number | null;
  peak_concurrency: number;
  [field: string]: unknown;
}

export interface TokenInfo {
  name: string;
  scopes: string[];
  apps: string[];
  created_at: number;
  last_used: number | null;
  id: string | number;
  origin: 'api' | 'local' | 'config' | string;
  [field: string]: unknown;
}

export type FileInput = { path: string; data: string | Buffer | Uint8Array; executable?: boolean };

export type Window = '1m' | '1h' | '24h' | '7d';

export interface LogsOptions {
  /** A Date, ms since the epoch, or a duration before now ("10m", "2h", "30s"). */
  since?: Date | number | string;
  requestId?: string;
  status?: 'ok' | 'error';
  version?: number;
  /** Records after this seq, oldest first. */
  afterSeq?: number;
  /** Default 100, at most 1000. */
  limit?: number;
}

/** What a transport does for the Client (lib/http-transport.cjs is the HTTP one). */
export interface Transport {
  call(spec: {
    target: string;
    event: unknown;
    requestId?: string;
    log: boolean;
    timeoutMs?: number;
  }): Promise<{
    value: unknown;
    function: string | null;
    version: number | null;
    requestId: string | null;
    start: string | null;
    timing: ServerTiming | null;
    durationMs: number;
    logTail: string | null;
  }>;
  request(spec: {
    method: 'GET' | 'POST' | 'PUT' | 'DELETE';
    path: string;
    query?: Record<string, string | number | undefined>;
    body?: unknown;
    timeoutMs?: number;
  }): Promise<any>;
  close(): void;
}

export interface ParsedAddr {
  protocol: 'http:' | 'https:';
  hostname: string;
  port: number;
  basePath: string;
  href: string;
}

export class Client {
  constructor(options?: ClientOptions);
  /** The address requests go to, as a URL. */
  readonly address: string;
  readonly token: string | null;
  readonly transport: Transport;
  invoke<T = unknown>(name: string, event?: unknown, options?: InvokeOptions): Promise<Result<T>>;
  /** Call a page (POST /page/NAME); a required field that fails throws FieldFailedError or FieldTimeoutError. */
  page<T = Record<string, unknown>>(
    name: string,
    request?: unknown,
    options?: { version?: number; alias?: string; timeoutMs?: number; retries?: number; requestId?: string },
  ): Promise<PageResult<T>>;
  health(): Promise<{ status: string; version: string; [field: string]: unknown }>;
  functions(): Promise<FunctionInfo[]>;
  function(name: string): Promise<FunctionInfo>;
  versions(name: string): Promise<Versions>;
  releases(name: string): Promise<Release[]>;
  deploy(
    source: string | FileInput[],
    options?: { message?: string; publish?: boolean; allowBreaking?: boolean; timeoutMs?: number },
  ): Promise<DeployOutcome>;
  publish(name: string, version: number, options?: { message?: string; allowBreaking?: boolean; timeoutMs?: number }): Promise<ReleaseOutcome>;
  rollback(name: string, options?: { message?: string; timeoutMs?: number }): Promise<ReleaseOutcome>;
  aliases(name: string): Promise<Alias[]>;
  setAlias(
    name: string,
    alias: string,
    options: { version: number; split?: { version: number; weight: number }; message?: string },
  ): Promise<Record<string, unknown>>;
  logs(name: string, options?: LogsOptions): Promise<CallList>;
  call(requestId: string): Promise<CallRecord>;
  stats(name: string, options?: { window?: Window }): Promise<Stats & { function: string; app: string; state: string; live_version: number | null; versions: Array<Stats & { version: number }> }>;
  appStats(app: string, options?: { window?: Window }): Promise<Stats & { functions: Array<Record<string, unknown>> }>;
  workers(): Promise<Record<string, unknown>>;
  tokens(): Promise<TokenInfo[]>;
  createToken(name: string, options?: { scopes?: Array<'admin' | 'deploy' | 'read' | 'invoke'>; apps?: string[] }): Promise<{ token: string; info: TokenInfo }>;
  revokeToken(name: string): Promise<{ name: string; revoked: boolean }>;
  /** Close idle keep-alive connections. */
  close(): void;
}

export class HttpTransport implements Transport {
  constructor(options: { addr: ParsedAddr; token?: string | null; ca?: ClientOptions['ca']; idleSocketMs?: number; maxSockets?: number });
  call: Transport['call'];
  request: Transport['request'];
  close(): void;
}

export interface FunctionErrorDetails {
  type: string;
  message: string;
  traceback: string;
}

/** Every error about a request to hearth. */
export class HearthError extends Error {
  constructor(message: string, fields?: Record<string, unknown>);
  /** hearth's error code (docs/API.md), or connection_failed, client_timeout, unexpected_response. */
  code: string;
  hint: string;
  /** HTTP status (0 when there was no answer). */
  status: number;
  function: string | null;
  version: number | null;
  requestId: string | null;
  details: FunctionErrorDetails | null;
  /** Retry-After, seconds. */
  retryAfter: number | null;
  /** What the call printed (error.log, with `log`). */
  log: string | null;
  /** How many times the request was sent. */
  attempts: number;
  /** With invalid_input / invalid_output: each way the value failed the schema. */
  failures: { pointer: string; message: string; keyword: string }[];
  /** With one of the function's own declared codes: its declared `retryable`. */
  retryable: boolean | null;
  /** With field_failed / field_timeout: the page's field that failed it. */
  field: string | null;
}
/** Refused before it ran (safe to send again); retried by the client. */
export class RefusedError extends HearthError {}
/** Ran on a worker and failed there. */
export class CallFailedError extends HearthError {}
export class FunctionError extends CallFailedError {
  errorType: string | null;
  errorMessage: string | null;
  traceback: string | null;
}
export class ConnectionError extends HearthError {
  code: 'connection_failed';
  address: string | null;
  /** Whether the whole request had been written (then it may have run). */
  sent: boolean;
}
export class ClientTimeoutError extends HearthError {
  code: 'client_timeout';
  timeoutMs: number | null;
}
export class BadJsonError extends HearthError {}
export class BadManifestError extends HearthError {}
export class BadBundleError extends HearthError {}
export class BadRequestError extends HearthError {}
export class BadAliasError extends HearthError {}
export class FunctionNotFoundError extends HearthError {}
export class AppNotFoundError extends HearthError {}
export class VersionNotFoundError extends HearthError {}
export class NotPublishedError extends HearthError {}
export class AliasNotFoundError extends HearthError {}
export class RouteNotFoundError extends HearthError {}
export class MethodNotAllowedError extends HearthError {}
export class NothingToRollBackError extends HearthError {}
/** A delete refused: other functions declare they call this one (`force=true` deletes anyway). */
export class FunctionInUseError extends HearthError {}
/** The function is offline (`hearth offline`); calls are refused until `hearth online`. */
export class FunctionOfflineError extends HearthError {}
export class BodyTooLargeError extends HearthError {}
export class BatchFailedError extends HearthError {}
export class DependencyInstallFailedError extends HearthError {}
export class LoadFailedError extends HearthError {}
export class QueueFullError extends RefusedError {}
export class AppOverBudgetError extends RefusedError {}
export class InternalError extends HearthError {}
export class WorkerDiedError extends CallFailedError {}
export class ProtocolError extends CallFailedError {}
export class OutOfMemoryError extends CallFailedError {}
export class ResponseTooLargeError extends CallFailedError {}
export class RuntimeUnavailableError extends HearthError {}
export class WorkerStartFailedError extends HearthError {}
export class OverloadedError extends RefusedError {}
export class CrashLoopError extends RefusedError {}
export class TimeoutError extends CallFailedError {}
export class UnauthorizedError extends HearthError {}
export class ForbiddenError extends HearthError {}
export class TokenNotFoundError extends HearthError {}
export class CallNotFoundError extends HearthError {}
export class RateLimitedError extends RefusedError {}
export class UnsupportedMediaTypeError extends HearthError {}
export class TooManyConnectionsError extends RefusedError {}
export class BodyTimeoutError extends HearthError {}
/** A nested call named a function already in its call chain. */
export class RecursionError extends CallFailedError {}
/** A chain of nested calls went deeper than `limits.max_depth`. */
export class ChainTooDeepError extends CallFailedError {}
/** The root request made all its nested calls (`limits.max_nested_calls`). */
export class BudgetExhaustedError extends CallFailedError {}
/** A nested call had no time left before its caller's deadline. */
export class DeadlineExceededError extends CallFailedError {}
/** The event does not match the function's [input] schema (`failures` says where). */
export class InvalidInputError extends HearthError {}
/** The answer does not match the function's [output] schema (output_validation = "enforce"). */
export class InvalidOutputError extends CallFailedError {}
/** The function raised an error code its hearth.toml does not declare. */
export class UndeclaredError extends CallFailedError {}
/** The version's input schema can break callers of the live one (allowBreaking). */
export class BreakingChangeError extends HearthError {}
/** One of the function's own declared error codes: `code`, `status`, `retryable` as declared. */
export class DeclaredError extends CallFailedError {}
/** No template by that name (`template_not_found`). */
export class TemplateNotFoundError extends HearthError {}
/** A template has that name already (`template_exists`). */
export class TemplateExistsError extends HearthError {}
/** Built-in templates cannot be deleted (`template_builtin`). */
export class TemplateBuiltinError extends HearthError {}
/** A page's required field failed (`field_failed`, 502); `field` names it. */
export class FieldFailedError extends CallFailedError {}
/** A page's required field was late (`field_timeout`, 504); `field` names it. */
export class FieldTimeoutError extends CallFailedError {}
/** `page()` named a function, not a page (`not_a_page`). */
export class NotAPageError extends HearthError {}

/** The class of a hearth error code (HearthError for an unknown one). */
export function errorClassFor(code: string): typeof HearthError;
/** The error of a non-2xx answer. */
export function fromResponse(status: number, headers: Record<string, string | string[] | undefined>, body: string): HearthError;
/** Whether an error is a refusal the client retries (429/503, Retry-After, a RETRYABLE code). */
export function isRetryable(error: unknown): boolean;
export function parseAddr(addr: string): ParsedAddr;
export function parseServerTiming(header: string | undefined): ServerTiming | null;
/** Every hearth error code this SDK has a class for. */
export const KNOWN_CODES: readonly string[];
/** The codes of refusals that are retried. */
export const RETRYABLE: ReadonlySet<string>;

declare const sdk: {
  Client: typeof Client;
  HearthError: typeof HearthError;
  [name: string]: unknown;
};
export default sdk;
