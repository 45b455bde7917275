"""Typed exceptions for hearth's error codes.

Every error the daemon answers has the shape of docs/API.md:
``{"error": {"code", "message", "hint", "function", "version",
"request_id", "details"}}``. :func:`error_from_response` turns it into the
class registered for its code (``CODES``), or into :class:`HearthError`
itself for a code this client does not know (a newer daemon's).

The families group codes that call for the same reaction:

- :class:`InvalidInput`: the request is wrong (fix it, do not retry);
- :class:`NotFound`: the function, version, alias, ... does not exist;
- :class:`AuthError`: :class:`Unauthorized` (401), :class:`Forbidden` (403);
- :class:`Rejected`: the call was refused before it ran (``retry_after``);
  the client retries these itself (``retries=``);
- :class:`CallFailed`: the call ran and failed (never retried);
- :class:`ReleaseError`: a deploy or publish could not go live;
- :class:`ServerError`: the daemon or its runtimes failed.
"""

import json
from typing import Any, Dict, Optional, Type

__all__ = [
    "HearthError",
    "HearthConnectionError",
    "UnexpectedResponse",
    "InvalidInput",
    "BadJson",
    "BadManifest",
    "BadBundle",
    "BadRequest",
    "BadAlias",
    "BodyTooLarge",
    "BodyTimeout",
    "UnsupportedMediaType",
    "MethodNotAllowed",
    "NotFound",
    "FunctionNotFound",
    "AppNotFound",
    "VersionNotFound",
    "NotPublished",
    "AliasNotFound",
    "RouteNotFound",
    "TokenNotFound",
    "CallNotFound",
    "TemplateNotFound",
    "NotAPage",
    "AuthError",
    "Unauthorized",
    "Forbidden",
    "Conflict",
    "NothingToRollBack",
    "FunctionInUse",
    "FunctionOffline",
    "TemplateExists",
    "TemplateBuiltin",
    "ReleaseError",
    "BatchFailed",
    "DependencyInstallFailed",
    "LoadFailed",
    "Rejected",
    "QueueFull",
    "AppOverBudget",
    "Overloaded",
    "CrashLoop",
    "RateLimited",
    "TooManyConnections",
    "CallFailed",
    "FunctionError",
    "Timeout",
    "FieldFailed",
    "FieldTimeout",
    "WorkerDied",
    "ProtocolError",
    "OutOfMemory",
    "ResponseTooLarge",
    "Recursion",
    "ChainTooDeep",
    "BudgetExhausted",
    "DeadlineExceeded",
    "InvalidOutput",
    "UndeclaredError",
    "DeclaredError",
    "BreakingChange",
    "ServerError",
    "Internal",
    "RuntimeUnavailable",
    "WorkerStartFailed",
    "CODES",
    "RETRYABLE_CODES",
    "error_class",
    "error_from_response",
]


class HearthError(Exception):
    """An error answered by hearth (or, for the subclasses below that say
    so, found by this client before or instead of an answer).

    ``code`` is the stable code of docs/API.md; ``status`` the HTTP status
    (None when no answer came); ``details`` the ``error.details`` object
    (a function's type, message and traceback; an installer's output);
    ``retry_after`` the seconds of a Retry-After header; ``attempts`` how
    many times the request was sent; ``log`` the call's log lines when
    ``invoke(..., log=True)`` was asked; ``failures`` each way an event
    failed the function's schema (``invalid_input``, ``invalid_output``:
    dicts with ``pointer``, ``message``, ``keyword``); ``retryable`` the
    function's own declaration, for one of its declared error codes.
    """

    code = "error"

    def __init__(
        self,
        code: Optional[str] = None,
        message: str = "",
        hint: str = "",
        status: Optional[int] = None,
        function: Optional[str] = None,
        version: Optional[int] = None,
        request_id: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
        retry_after: Optional[float] = None,
        failures: Optional[list] = None,
        retryable: Optional[bool] = None,
        field: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.failures = list(failures or [])
        self.retryable = retryable
        #: With ``field_failed`` and ``field_timeout``: the page's field
        #: (its path) whose failure failed the page.
        self.field = field
        if code is not None:
            self.code = code
        self.message = message
        self.hint = hint
        self.status = status
        self.function = function
        self.version = version
        self.request_id = request_id
        self.details = details
        self.retry_after = retry_after
        self.attempts = 1
        self.log: Optional[list] = None

    def __str__(self) -> str:
        out = self.message or self.code
        traceback = (self.details or {}).get("traceback")
        if isinstance(traceback, str) and traceback.strip():
            out += "\n\n" + traceback.rstrip() + "\n"
        if self.hint:
            out += "\nhint: " + self.hint
        return out

    def __repr__(self) -> str:
        return "%s(code=%r, status=%r, message=%r)" % (
            type(self).__name__,
            self.code,
            self.status,
            self.message,
        )


class HearthConnectionError(HearthError, ConnectionError):
    """The daemon could not be reached, or the connection failed before
    its answer was read. ``address`` names it."""

    code = "connection_failed"

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(
            message="cannot reach the hearth daemon at %s (%s)" % (address, reason),
            hint="start it with `hearth serve`, or point HEARTH_ADDR "
            "(or Client(addr=...)) at a running daemon",
        )
        self.address = address
        self.reason = reason


class UnexpectedResponse(HearthError):
    """An answer that is not hearth's JSON (something else listens there?)."""

    code = "unexpected_response"


class InvalidInput(HearthError):
    """The request is wrong: fix it rather than retry it. Itself, code
    ``invalid_input``: the event does not match the function's [input]
    schema (``failures`` says where); the function did not run."""

    code = "invalid_input"


class BadJson(InvalidInput):
    code = "bad_json"


class BadManifest(InvalidInput):
    code = "bad_manifest"


class BadBundle(InvalidInput):
    """A file of a deploy cannot be taken (also raised by ``deploy`` before
    sending, for a symbolic link or a missing directory; ``status`` None)."""

    code = "bad_bundle"


class BadRequest(InvalidInput):
    code = "bad_request"


class BadAlias(InvalidInput):
    code = "bad_alias"


class BodyTooLarge(InvalidInput):
    code = "body_too_large"


class BodyTimeout(InvalidInput):
    code = "body_timeout"


class UnsupportedMediaType(InvalidInput):
    code = "unsupported_media_type"


class MethodNotAllowed(InvalidInput):
    code = "method_not_allowed"


class NotFound(HearthError):
    """Something named in the request does not exist."""


class FunctionNotFound(NotFound):
    code = "function_not_found"


class AppNotFound(NotFound):
    code = "app_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class NotPublished(NotFound):
    code = "not_published"


class AliasNotFound(NotFound):
    code = "alias_not_found"


class RouteNotFound(NotFound):
    code = "route_not_found"


class TokenNotFound(NotFound):
    code = "token_not_found"


class CallNotFound(NotFound):
    code = "call_not_found"


class TemplateNotFound(NotFound):
    code = "template_not_found"


class NotAPage(NotFound):
    """``page()`` named a function: call it with ``invoke()``."""

    code = "not_a_page"


class AuthError(HearthError):
    """The token is missing, invalid, or lacks the route's scope."""


class Unauthorized(AuthError):
    code = "unauthorized"


class Forbidden(AuthError):
    code = "forbidden"


class Conflict(HearthError):
    """The request does not fit the current state."""


class NothingToRollBack(Conflict):
    code = "nothing_to_roll_back"


class FunctionInUse(Conflict):
    """A delete refused: other functions declare they call this one
    (``calls`` in their hearth.toml); ``force=true`` deletes it anyway."""

    code = "function_in_use"


class FunctionOffline(Conflict):
    """The function was taken offline (``hearth offline``): every call is
    refused until ``hearth online``. Not retried."""

    code = "function_offline"
class TemplateExists(Conflict):
    """A built-in or saved template has that name already."""

    code = "template_exists"


class TemplateBuiltin(Conflict):
    """Built-in templates ship with hearth and cannot be deleted."""

    code = "template_builtin"


class ReleaseError(HearthError):
    """A deploy or publish could not make the version live; nothing changed."""


class BatchFailed(ReleaseError):
    code = "batch_failed"


class DependencyInstallFailed(ReleaseError):
    code = "dependency_install_failed"


class LoadFailed(ReleaseError):
    """The code does not load (at deploy/publish: 422; during a call: 500)."""

    code = "load_failed"


class Rejected(HearthError):
    """The call was refused before it ran; ``retry_after`` says when to try
    again. The client retries these by itself (``retries=``)."""


class QueueFull(Rejected):
    code = "queue_full"


class AppOverBudget(Rejected):
    code = "app_over_budget"


class Overloaded(Rejected):
    code = "overloaded"


class CrashLoop(Rejected):
    code = "crash_loop"


class RateLimited(Rejected):
    code = "rate_limited"


class TooManyConnections(Rejected):
    code = "too_many_connections"


class CallFailed(HearthError):
    """The call ran (or began to) and failed. Never retried by the client:
    the function may have had effects."""


class FunctionError(CallFailed):
    """The function raised; ``error_type``, ``error_message`` and
    ``traceback`` are its own."""

    code = "function_error"

    @property
    def traceback(self) -> str:
        return str((self.details or {}).get("traceback") or "")

    @property
    def error_type(self) -> str:
        return str((self.details or {}).get("type") or "")

    @property
    def error_message(self) -> str:
        return str((self.details or {}).get("message") or "")


class Timeout(CallFailed):
    """The call did not finish within the function's ``limits.timeout_ms``."""

    code = "timeout"


class FieldFailed(CallFailed):
    """A page's required field failed (502); ``field`` names it, and the
    message its function and why."""

    code = "field_failed"


class FieldTimeout(CallFailed):
    """A page's required field was late (504): cut at its ``timeout_ms`` or
    the page's; ``field`` names it."""

    code = "field_timeout"


class WorkerDied(CallFailed):
    code = "worker_died"


class ProtocolError(CallFailed):
    code = "protocol_error"


class OutOfMemory(CallFailed):
    code = "out_of_memory"


class ResponseTooLarge(CallFailed):
    code = "response_too_large"


class Recursion(CallFailed):
    """A nested call named a function already in its call chain."""

    code = "recursion"


class ChainTooDeep(CallFailed):
    """A chain of nested calls went deeper than ``limits.max_depth``."""

    code = "chain_too_deep"


class BudgetExhausted(CallFailed):
    """The root request made all the nested calls it may
    (``limits.max_nested_calls``)."""

    code = "budget_exhausted"


class DeadlineExceeded(CallFailed):
    """A nested call had no time left before its caller's deadline."""

    code = "deadline_exceeded"


class InvalidOutput(CallFailed):
    """The function answered with a value its [output] schema refuses
    (``output_validation = "enforce"``); ``failures`` says where."""

    code = "invalid_output"


class UndeclaredError(CallFailed):
    """The function raised an error code its hearth.toml does not declare."""

    code = "undeclared_error"


class DeclaredError(CallFailed):
    """The function raised one of its own declared error codes
    (``[errors.CODE]``): ``code`` is that code, ``status`` its declared
    HTTP status and ``retryable`` its declared ``retryable``."""


class BreakingChange(ReleaseError):
    """The version's input schema can break callers of the live version;
    publish it with ``allow_breaking=True`` if they are ready."""

    code = "breaking_change"


class ServerError(HearthError):
    """The daemon, its store or a runtime failed."""


class Internal(ServerError):
    code = "internal"


class RuntimeUnavailable(ServerError):
    code = "runtime_unavailable"


class WorkerStartFailed(ServerError):
    code = "worker_start_failed"


def _leaves() -> Dict[str, Type[HearthError]]:
    out: Dict[str, Type[HearthError]] = {}
    stack = list(HearthError.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if "code" in cls.__dict__ and cls.__module__ == __name__:
            out[cls.__dict__["code"]] = cls
    out.pop(HearthConnectionError.code, None)
    out.pop(UnexpectedResponse.code, None)
    return out


#: Every daemon error code this client knows, with its class.
CODES: Dict[str, Type[HearthError]] = _leaves()

#: Codes of calls refused before they ran: retried (with Retry-After, on
#: 429 or 503) up to the client's ``retries``.
RETRYABLE_CODES = frozenset(
    {
        "queue_full",
        "overloaded",
        "rate_limited",
        "app_over_budget",
        "too_many_connections",
        "crash_loop",
    }
)


def error_class(code: str) -> Type[HearthError]:
    """The class for an error code (HearthError for an unknown one)."""
    return CODES.get(code, HearthError)


def _retry_after(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: not sent by hearth
    return max(seconds, 0.0)


def error_from_response(
    status: int, headers: Dict[str, str], body: bytes, address: str
) -> HearthError:
    """The exception for an error answer (status >= 400)."""
    retry_after = _retry_after(headers.get("retry-after"))
    try:
        doc = json.loads(body.decode("utf-8"))
        detail = doc["error"]
        code = detail["code"]
        if not isinstance(code, str):
            raise TypeError(code)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        text = body[:300].decode("utf-8", "replace")
        return UnexpectedResponse(
            message="the daemon at %s answered %d with a body that is not hearth's "
            "JSON: %s" % (address, status, text),
            hint="is something else listening there?",
            status=status,
            retry_after=retry_after,
        )
    version = detail.get("version")
    details = detail.get("details")
    failures = detail.get("failures")
    retryable = detail.get("retryable")
    cls = error_class(code)
    # A code of the function's own comes with its declared `retryable`.
    if cls is HearthError and isinstance(retryable, bool):
        cls = DeclaredError
    err = cls(
        code=code,
        message=str(detail.get("message") or ""),
        hint=str(detail.get("hint") or ""),
        status=status,
        function=detail.get("function"),
        version=version if isinstance(version, int) else None,
        request_id=detail.get("request_id") or headers.get("x-request-id"),
        details=details if isinstance(details, dict) else None,
        retry_after=retry_after,
        failures=failures if isinstance(failures, list) else None,
        retryable=retryable if isinstance(retryable, bool) else None,
        field=detail.get("field") if isinstance(detail.get("field"), str) else None,
    )
    return err
