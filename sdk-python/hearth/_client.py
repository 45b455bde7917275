"""The synchronous client."""

import datetime
import json
import os
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote, urlencode, urlsplit

from . import __version__
from ._bundle import read_files
from ._http import HttpTransport
from ._transport import Response, Transport
from .errors import (
    RETRYABLE_CODES,
    CallNotFound,
    HearthError,
    UnexpectedResponse,
    error_from_response,
)

DEFAULT_ADDR = "127.0.0.1:7700"
DEFAULT_PORT = 7700
#: Seconds a socket operation may wait (connect, send, each read) unless
#: the client or the request says otherwise.
DEFAULT_TIMEOUT = 300.0
#: Seconds ``invoke(..., log=True)`` waits for the call's record (records
#: are written off the call path, in batches).
LOG_WAIT = 10.0

_NO_BODY = object()

Since = Union[int, float, datetime.datetime, datetime.timedelta]


@dataclass
class Result:
    """A call's answer.

    ``duration_ms`` is measured by the client: from sending the (last)
    attempt to having read its answer. ``server_timing`` holds the daemon's
    own phases from the ``Server-Timing`` header (``queue``, ``run``, and
    for a cold start ``spawn`` and ``load``), in milliseconds.
    """

    value: Any
    function: str
    version: Optional[int]
    request_id: str
    duration_ms: float
    cold: bool
    start: str = ""
    server_timing: Dict[str, float] = field(default_factory=dict)
    attempts: int = 1
    #: The call's log lines ``[{"stream", "time_ms", "text"}]`` when asked
    #: for with ``log=True`` (None if the record did not appear in time).
    log: Optional[List[Dict[str, Any]]] = None


def parse_addr(addr: str) -> Tuple[str, str, int, str]:
    """``(scheme, host, port, shown)`` of ``host:port`` or a URL."""
    text = addr.strip().rstrip("/")
    if not text:
        raise ValueError("empty daemon address; use HOST:PORT, for example 127.0.0.1:7700")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
        raise ValueError(
            'invalid daemon address "%s"; use HOST:PORT, for example 127.0.0.1:7700, '
            "or https://HOST:PORT" % addr
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError('invalid port in daemon address "%s"' % addr) from None
    if port is None:
        port = DEFAULT_PORT
    host = parts.hostname
    shown_host = "[%s]" % host if ":" in host else host
    return parts.scheme, host, port, "%s:%d" % (shown_host, port)


def _ssl_context() -> ssl.SSLContext:
    """The system's roots, and the PEM certificates in HEARTH_CA_CERT (as
    the CLI trusts them)."""
    ctx = ssl.create_default_context()
    ca = os.environ.get("HEARTH_CA_CERT")
    if ca:
        try:
            ctx.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as e:
            raise ValueError(
                "cannot read the CA certificate %s (HEARTH_CA_CERT): %s; give a PEM file" % (ca, e)
            ) from None
    return ctx


@dataclass
class PageResult:
    """A page call's answer: ``data`` (each field's value at its path) and
    ``errors`` (``[{"field", "code", "function", "version", "message",
    "fallback"}]`` for each field that failed or was late).
    ``server_timing`` has ``page``, ``critical`` (the sum of the critical
    path's member calls) and ``field.PATH`` for each field, in ms."""

    data: Dict[str, Any]
    errors: List[Dict[str, Any]]
    page: str
    version: Optional[int]
    request_id: str
    duration_ms: float
    server_timing: Dict[str, float] = field(default_factory=dict)
    attempts: int = 1

    @property
    def complete(self) -> bool:
        """Every field got its own function's value."""
        return not self.errors


def _target(name: str, version: Optional[int], alias: Optional[str]) -> str:
    """``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``."""
    if version is not None and alias is not None:
        raise ValueError("give version= or alias=, not both")
    if version is not None:
        return "%s@%d" % (name, int(version))
    if alias is not None:
        return "%s@%s" % (name, alias)
    return name


def _server_timing(value: Optional[str]) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for metric in (value or "").split(","):
        name, _, params = metric.strip().partition(";")
        for param in params.split(";"):
            key, _, number = param.strip().partition("=")
            if key == "dur":
                try:
                    out[name.strip()] = float(number)
                except ValueError:
                    pass
    return out


def _ms(since: Since) -> int:
    if isinstance(since, datetime.timedelta):
        return int((time.time() - since.total_seconds()) * 1000)
    if isinstance(since, datetime.datetime):
        return int(since.timestamp() * 1000)
    return int(since)


def _q(part: str) -> str:
    return quote(str(part), safe="")


class Client:
    """A client of one hearth daemon.

    ``addr``: ``HOST:PORT`` or ``http(s)://HOST:PORT``; default HEARTH_ADDR,
    else ``127.0.0.1:7700``. For https, the system's CA roots and the PEM
    file in HEARTH_CA_CERT are trusted. ``token``: default HEARTH_TOKEN
    (management routes need one; calls of open applications do not).
    ``timeout``: seconds any one socket operation may wait (default 300).
    ``retries``: how many times a call refused before it ran (queue_full,
    overloaded, rate_limited, app_over_budget, too_many_connections,
    crash_loop, answered 429/503 with Retry-After) is sent again, waiting
    Retry-After each time; ``retry_wait``: the most seconds spent waiting
    for those retries in all (and never past the request's ``timeout``).

    Safe to share between threads; each thread keeps its own keep-alive
    connection.
    """

    def __init__(
        self,
        addr: Optional[str] = None,
        token: Optional[str] = None,
        timeout: Optional[float] = None,
        *,
        retries: int = 2,
        retry_wait: float = 10.0,
        transport: Optional[Transport] = None,
    ) -> None:
        if transport is None:
            addr = addr or os.environ.get("HEARTH_ADDR") or DEFAULT_ADDR
            scheme, host, port, shown = parse_addr(addr)
            context = _ssl_context() if scheme == "https" else None
            transport = HttpTransport(scheme, host, port, shown, context)
        self._transport = transport
        if token is None:
            token = os.environ.get("HEARTH_TOKEN") or None
        self.token = token.strip() if token else None
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.retries = max(0, int(retries))
        self.retry_wait = retry_wait

    @property
    def address(self) -> str:
        """The daemon's address, as error messages name it."""
        return self._transport.address

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- requests ---------------------------------------------------------

    def _headers(self, has_body: bool) -> Dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "hearth-python/" + __version__}
        if has_body:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        return headers

    def _send(
        self,
        method: str,
        path: str,
        payload: Any = _NO_BODY,
        *,
        timeout: Optional[float] = None,
        target: Optional[str] = None,
        retries: Optional[int] = None,
        page: bool = False,
    ) -> Tuple[Response, int, float]:
        """Send with the retry policy; the answer (2xx), the attempts and
        the last attempt's duration in ms. Error answers raise."""
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else max(0, int(retries))
        if payload is _NO_BODY:
            body: Optional[bytes] = None
        elif isinstance(payload, bytes):
            body = payload
        else:
            body = json.dumps(payload).encode("utf-8")
        headers = self._headers(body is not None)
        began = time.monotonic()
        waited = 0.0
        attempts = 0
        while True:
            attempts += 1
            sent = time.monotonic()
            if target is not None:
                if page:
                    resp = self._transport.call(target, body or b"", headers, timeout, page=True)
                else:
                    resp = self._transport.call(target, body or b"", headers, timeout)
            else:
                resp = self._transport.request(method, path, body, headers, timeout)
            took = (time.monotonic() - sent) * 1000.0
            if resp.status < 400:
                return resp, attempts, took
            err = error_from_response(resp.status, resp.headers, resp.body, self.address)
            err.attempts = attempts
            wait = err.retry_after
            if (
                attempts <= retries
                and err.code in RETRYABLE_CODES
                and resp.status in (429, 503)
                and wait is not None
            ):
                wait = max(wait, 0.05)
                elapsed = time.monotonic() - began
                if waited + wait <= self.retry_wait and (
                    timeout is None or elapsed + wait < timeout
                ):
                    time.sleep(wait)
                    waited += wait
                    continue
            raise err

    def _json(self, resp: Response) -> Any:
        try:
            return json.loads(resp.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise UnexpectedResponse(
                message="the daemon at %s answered %d with a body that is not JSON: %s"
                % (self.address, resp.status, resp.body[:300].decode("utf-8", "replace")),
                status=resp.status,
            ) from None

    def _get(self, path: str, query: Optional[Dict[str, Any]] = None) -> Any:
        if query:
            items = [(k, v) for k, v in query.items() if v is not None]
            if items:
                path += "?" + urlencode(items)
        resp, _, _ = self._send("GET", path)
        return self._json(resp)

    def _post(self, path: str, payload: Any, method: str = "POST", **kw: Any) -> Any:
        resp, _, _ = self._send(method, path, payload, **kw)
        return self._json(resp)

    # -- calls ------------------------------------------------------------

    def invoke(
        self,
        name: str,
        event: Any = None,
        *,
        version: Optional[int] = None,
        alias: Optional[str] = None,
        timeout: Optional[float] = None,
        log: bool = False,
        retries: Optional[int] = None,
    ) -> Result:
        """Call a function (its live version, ``version=N`` or ``alias=``)
        with ``event`` (any JSON value; None: ``{}``)."""
        target = _target(name, version, alias)
        body = b"" if event is None else json.dumps(event).encode("utf-8")
        try:
            resp, attempts, took = self._send(
                "POST", "", body, timeout=timeout, target=target, retries=retries
            )
        except HearthError as err:
            if log and err.request_id and err.status is not None:
                record = self._wait_record(err.request_id)
                err.log = record.get("log") if record else None
            raise
        h = resp.headers
        version_header = h.get("x-hearth-version")
        start = h.get("x-hearth-start", "")
        result = Result(
            value=self._json(resp),
            function=h.get("x-hearth-function", name),
            version=int(version_header) if version_header and version_header.isdigit() else None,
            request_id=h.get("x-request-id", ""),
            duration_ms=took,
            cold=bool(start) and start != "warm",
            start=start,
            server_timing=_server_timing(h.get("server-timing")),
            attempts=attempts,
        )
        if log and result.request_id:
            record = self._wait_record(result.request_id)
            result.log = record.get("log") if record else None
        return result

    def page(
        self,
        name: str,
        request: Any = None,
        *,
        version: Optional[int] = None,
        alias: Optional[str] = None,
        timeout: Optional[float] = None,
        retries: Optional[int] = None,
    ) -> "PageResult":
        """Call a page (``POST /page/NAME``) with ``request`` (any JSON
        value; None: ``{}``): its ``data`` and the ``errors`` of the fields
        that got their fallback. A required field that fails raises
        :class:`hearth.errors.FieldFailed` or :class:`hearth.errors.FieldTimeout`."""
        target = _target(name, version, alias)
        body = b"" if request is None else json.dumps(request).encode("utf-8")
        resp, attempts, took = self._send(
            "POST", "", body, timeout=timeout, target=target, retries=retries, page=True
        )
        h = resp.headers
        value = self._json(resp)
        version_header = h.get("x-hearth-version")
        return PageResult(
            data=value.get("data", {}) if isinstance(value, dict) else {},
            errors=value.get("errors", []) if isinstance(value, dict) else [],
            page=h.get("x-hearth-function", name),
            version=int(version_header) if version_header and version_header.isdigit() else None,
            request_id=h.get("x-request-id", ""),
            duration_ms=took,
            server_timing=_server_timing(h.get("server-timing")),
            attempts=attempts,
        )

    def _wait_record(self, request_id: str, wait: float = LOG_WAIT) -> Optional[Dict[str, Any]]:
        deadline = time.monotonic() + wait
        pause = 0.02
        while True:
            try:
                return self.call(request_id)
            except CallNotFound:
                if time.monotonic() >= deadline:
                    return None
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    # -- management -------------------------------------------------------

    def health(self) -> Dict[str, Any]:
        """``GET /api/v1/health``: status, version, runtimes (no token needed)."""
        return self._get("/api/v1/health")

    def deploy(
        self,
        path: Union[str, "os.PathLike[str]"],
        message: Optional[str] = None,
        publish: bool = True,
        *,
        timeout: Optional[float] = None,
        allow_breaking: bool = False,
    ) -> Dict[str, Any]:
        """Store the function directory ``path`` as a version (and publish
        it): ``{function, version, created, hash, live, previous, load_ms}``.
        A version whose input schema can break callers of the live one is
        stored but not published (``BreakingChange``) unless
        ``allow_breaking``."""
        files = read_files(os.fspath(path))
        body = {
            "files": files,
            "message": message or "",
            "publish": bool(publish),
            "allow_breaking": bool(allow_breaking),
        }
        return self._post("/api/v1/deploy", body, timeout=timeout)

    def publish(
        self,
        name: str,
        version: int,
        message: Optional[str] = None,
        *,
        allow_breaking: bool = False,
    ) -> Dict[str, Any]:
        """Make ``version`` live: ``{function, version, previous, action}``
        (``BreakingChange`` when its input schema can break callers of the
        live version, unless ``allow_breaking``)."""
        return self._post(
            "/api/v1/functions/%s/publish" % _q(name),
            {"version": int(version), "message": message or "", "allow_breaking": bool(allow_breaking)},
        )

    def rollback(self, name: str, message: Optional[str] = None) -> Dict[str, Any]:
        """Make live the version that was live before the current one."""
        return self._post("/api/v1/functions/%s/rollback" % _q(name), {"message": message or ""})

    def functions(self) -> List[Dict[str, Any]]:
        """Every function (the list of ``GET /api/v1/functions``)."""
        return list(self._get("/api/v1/functions").get("functions", []))

    def function(self, name: str) -> Dict[str, Any]:
        """One function: name, runtime, app, state, live_version, versions, ..."""
        return self._get("/api/v1/functions/%s" % _q(name))

    def versions(self, name: str) -> Dict[str, Any]:
        """``{function, live_version, versions: [{version, hash, message, ...}]}``."""
        return self._get("/api/v1/functions/%s/versions" % _q(name))

    def releases(self, name: str) -> List[Dict[str, Any]]:
        """The release history, newest first."""
        return list(self._get("/api/v1/functions/%s/releases" % _q(name)).get("releases", []))

    def aliases(self, name: str) -> List[Dict[str, Any]]:
        """``[{alias, target: {version, split}}]``."""
        return list(self._get("/api/v1/functions/%s/aliases" % _q(name)).get("aliases", []))

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        split: Optional[Tuple[int, int]] = None,
        message: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Create or move an alias; ``split=(version, weight)`` sends that
        share (percent) of its calls to another version."""
        body: Dict[str, Any] = {"version": int(version), "message": message or ""}
        if split is not None:
            body["split"] = {"version": int(split[0]), "weight": int(split[1])}
        return self._post(
            "/api/v1/functions/%s/aliases/%s" % (_q(name), _q(alias)), body, method="PUT"
        )

    def logs(
        self,
        name: str,
        since: Optional[Since] = None,
        request_id: Optional[str] = None,
        status: Optional[str] = None,
        version: Optional[int] = None,
        limit: Optional[int] = None,
        after_seq: Optional[int] = None,
    ) -> Dict[str, Any]:
        """A function's call records, newest first (oldest first with
        ``after_seq``): ``{function, calls, last_seq, dropped}``. ``since``:
        ms since the epoch, a datetime, or a timedelta (that long ago);
        ``status``: ``"ok"`` or ``"error"``."""
        query = {
            "since_ms": None if since is None else _ms(since),
            "request_id": request_id,
            "status": status,
            "version": version,
            "limit": limit,
            "after_seq": after_seq,
        }
        return self._get("/api/v1/functions/%s/calls" % _q(name), query)

    def call(self, request_id: str) -> Dict[str, Any]:
        """One call's record (``CallRecord`` of docs/API.md)."""
        return self._get("/api/v1/calls/%s" % _q(request_id))

    def stats(
        self,
        name: Optional[str] = None,
        *,
        app: Optional[str] = None,
        window: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Call statistics of a function (``name``) or an application
        (``app=``) over ``window`` (``1m``, ``1h`` (default), ``24h``, ``7d``)."""
        if (name is None) == (app is None):
            raise ValueError("give a function name or app=, one of them")
        if app is not None:
            path = "/api/v1/apps/%s/stats" % _q(app)
        else:
            path = "/api/v1/functions/%s/stats" % _q(str(name))
        return self._get(path, {"window": window})

    def tokens(self) -> List[Dict[str, Any]]:
        """Every token's name, scopes and last use (never a secret)."""
        return list(self._get("/api/v1/tokens").get("tokens", []))

    def create_token(
        self, name: str, scopes: Sequence[str], apps: Optional[Sequence[str]] = None
    ) -> Dict[str, Any]:
        """``{token, info}``: the new token, shown this once."""
        return self._post(
            "/api/v1/tokens", {"name": name, "scopes": list(scopes), "apps": list(apps or [])}
        )

    def revoke_token(self, name: str) -> Dict[str, Any]:
        """``{name, revoked}``."""
        resp, _, _ = self._send("DELETE", "/api/v1/tokens/%s" % _q(name))
        return self._json(resp)
