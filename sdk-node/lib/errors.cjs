'use strict';
// Errors: one class per hearth error code (daemon/api/src/error.rs,
// ErrorCode::ALL), all of them HearthError. A code this SDK does not know
// yet (a newer daemon) is a plain HearthError with that code.

/** Every error the SDK throws about a request to hearth. */
class HearthError extends Error {
  constructor(message, fields = {}) {
    super(message, fields.cause !== undefined ? { cause: fields.cause } : undefined);
    this.name = new.target.name;
    this.code = fields.code ?? 'unknown';
    this.hint = fields.hint ?? '';
    this.status = fields.status ?? 0;
    this.function = fields.function ?? null;
    this.version = fields.version ?? null;
    this.requestId = fields.requestId ?? null;
    this.details = fields.details ?? null;
    this.retryAfter = fields.retryAfter ?? null;
    this.log = fields.log ?? null;
    this.attempts = fields.attempts ?? 1;
    /** With invalid_input / invalid_output: [{pointer, message, keyword}]. */
    this.failures = Array.isArray(fields.failures) ? fields.failures : [];
    /** With one of the function's own declared codes: its `retryable`. */
    this.retryable = typeof fields.retryable === 'boolean' ? fields.retryable : null;
    /** With field_failed / field_timeout: the page's field that failed it. */
    this.field = typeof fields.field === 'string' ? fields.field : null;
  }
}

/**
 * Refused before it ran: the function did not run, so the same call may be
 * sent again (after Retry-After). The client retries these itself.
 */
class RefusedError extends HearthError {}

/** The call reached a worker and failed there: it ran (maybe partly). */
class CallFailedError extends HearthError {}

/** The function raised; `traceback`, `errorType`, `errorMessage` say what. */
class FunctionError extends CallFailedError {
  constructor(message, fields = {}) {
    super(message, fields);
    const d = this.details || {};
    this.errorType = d.type ?? null;
    this.errorMessage = d.message ?? null;
    this.traceback = d.traceback ?? null;
  }
}

// code -> [class name, parent]. Written out by hand so that the test that
// compares it with ErrorCode::ALL catches a code added to the daemon.
const TABLE = [
  ['bad_json', 'BadJsonError', HearthError],
  ['bad_manifest', 'BadManifestError', HearthError],
  ['bad_bundle', 'BadBundleError', HearthError],
  ['bad_request', 'BadRequestError', HearthError],
  ['bad_alias', 'BadAliasError', HearthError],
  ['function_not_found', 'FunctionNotFoundError', HearthError],
  ['app_not_found', 'AppNotFoundError', HearthError],
  ['version_not_found', 'VersionNotFoundError', HearthError],
  ['not_published', 'NotPublishedError', HearthError],
  ['alias_not_found', 'AliasNotFoundError', HearthError],
  ['route_not_found', 'RouteNotFoundError', HearthError],
  ['method_not_allowed', 'MethodNotAllowedError', HearthError],
  ['nothing_to_roll_back', 'NothingToRollBackError', HearthError],
  ['body_too_large', 'BodyTooLargeError', HearthError],
  ['batch_failed', 'BatchFailedError', HearthError],
  ['dependency_install_failed', 'DependencyInstallFailedError', HearthError],
  ['load_failed', 'LoadFailedError', HearthError],
  ['queue_full', 'QueueFullError', RefusedError],
  ['app_over_budget', 'AppOverBudgetError', RefusedError],
  ['function_error', 'FunctionError', null],
  ['internal', 'InternalError', HearthError],
  ['worker_died', 'WorkerDiedError', CallFailedError],
  ['protocol_error', 'ProtocolError', CallFailedError],
  ['out_of_memory', 'OutOfMemoryError', CallFailedError],
  ['response_too_large', 'ResponseTooLargeError', CallFailedError],
  ['runtime_unavailable', 'RuntimeUnavailableError', HearthError],
  ['worker_start_failed', 'WorkerStartFailedError', HearthError],
  ['overloaded', 'OverloadedError', RefusedError],
  ['crash_loop', 'CrashLoopError', RefusedError],
  ['timeout', 'TimeoutError', CallFailedError],
  ['unauthorized', 'UnauthorizedError', HearthError],
  ['forbidden', 'ForbiddenError', HearthError],
  ['token_not_found', 'TokenNotFoundError', HearthError],
  ['call_not_found', 'CallNotFoundError', HearthError],
  ['rate_limited', 'RateLimitedError', RefusedError],
  ['unsupported_media_type', 'UnsupportedMediaTypeError', HearthError],
  ['too_many_connections', 'TooManyConnectionsError', RefusedError],
  ['body_timeout', 'BodyTimeoutError', HearthError],
  ['recursion', 'RecursionError', CallFailedError],
  ['chain_too_deep', 'ChainTooDeepError', CallFailedError],
  ['budget_exhausted', 'BudgetExhaustedError', CallFailedError],
  ['deadline_exceeded', 'DeadlineExceededError', CallFailedError],
  ['invalid_input', 'InvalidInputError', HearthError],
  ['invalid_output', 'InvalidOutputError', CallFailedError],
  ['undeclared_error', 'UndeclaredError', CallFailedError],
  ['breaking_change', 'BreakingChangeError', HearthError],
  ['function_in_use', 'FunctionInUseError', HearthError],
  ['function_offline', 'FunctionOfflineError', HearthError],
  ['template_not_found', 'TemplateNotFoundError', HearthError],
  ['template_exists', 'TemplateExistsError', HearthError],
  ['template_builtin', 'TemplateBuiltinError', HearthError],
  ['field_failed', 'FieldFailedError', CallFailedError],
  ['field_timeout', 'FieldTimeoutError', CallFailedError],
  ['not_a_page', 'NotAPageError', HearthError],
];

/**
 * One of the function's own declared error codes (`[errors.CODE]` in its
 * hearth.toml): `code` is that code, `status` its declared status and
 * `retryable` its declared `retryable`.
 */
class DeclaredError extends CallFailedError {}

const classes = { HearthError, RefusedError, CallFailedError, FunctionError, DeclaredError };
const byCode = new Map();
for (const [code, name, parent] of TABLE) {
  let cls = classes[name];
  if (!cls) {
    // A named class (so stack traces and `err.name` read well).
    cls = { [name]: class extends parent {} }[name];
    classes[name] = cls;
  }
  byCode.set(code, cls);
}

/** The codes of refusals the client may retry (the call did not run). */
const RETRYABLE = new Set([
  'queue_full',
  'overloaded',
  'rate_limited',
  'app_over_budget',
  'too_many_connections',
  'crash_loop',
]);

/** The class hearth's `code` maps to (HearthError for an unknown code). */
function errorClassFor(code) {
  return byCode.get(code) || HearthError;
}

/**
 * The error of a non-2xx answer: `body` is its text, `status` its HTTP
 * status, `headers` its (lower-cased) headers.
 */
function fromResponse(status, headers, body) {
  let detail = null;
  try {
    detail = JSON.parse(body).error;
  } catch {
    detail = null;
  }
  const retryAfterHeader = headers['retry-after'];
  const retryAfter =
    retryAfterHeader !== undefined && /^\d+$/.test(String(retryAfterHeader).trim())
      ? Number(retryAfterHeader)
      : null;
  const requestId = headers['x-request-id'] ?? null;
  if (!detail || typeof detail !== 'object' || typeof detail.code !== 'string') {
    const text = String(body).slice(0, 200);
    return new HearthError(
      `hearth answered HTTP ${status} without an error body${text ? `: ${text}` : ''}`,
      { code: 'unexpected_response', status, retryAfter, requestId },
    );
  }
  let Cls = errorClassFor(detail.code);
  // A code of the function's own comes with its declared `retryable`.
  if (Cls === HearthError && typeof detail.retryable === 'boolean') Cls = DeclaredError;
  return new Cls(detail.message || detail.code, {
    code: detail.code,
    hint: detail.hint,
    status,
    function: detail.function,
    version: detail.version,
    requestId: detail.request_id ?? requestId,
    details: detail.details,
    retryAfter,
    log: detail.log,
    failures: detail.failures,
    retryable: detail.retryable,
    field: detail.field,
  });
}

/** hearth could not be reached, or the connection broke before an answer. */
class ConnectionError extends HearthError {
  constructor(message, fields = {}) {
    super(message, { code: 'connection_failed', ...fields });
    this.address = fields.address ?? null;
    /** Whether the whole request had been written when it failed. */
    this.sent = fields.sent ?? false;
  }
}

/** No answer within the client's own timeout (timeoutMs). */
class ClientTimeoutError extends HearthError {
  constructor(message, fields = {}) {
    super(message, { code: 'client_timeout', ...fields });
    this.timeoutMs = fields.timeoutMs ?? null;
  }
}

module.exports = {
  ...classes,
  ConnectionError,
  ClientTimeoutError,
  RETRYABLE,
  errorClassFor,
  fromResponse,
  /** Every code this SDK has a class for. */
  KNOWN_CODES: TABLE.map(([code]) => code),
};
