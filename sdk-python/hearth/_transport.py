"""The small interface between :class:`hearth.Client` and the way requests
reach a daemon.

The client builds paths, bodies and headers, maps errors and applies the
retry policy; a transport only moves one request and its answer. Today
there is one, :class:`hearth._http.HttpTransport`. An in-process transport
(a published function run inside the caller's own process) would override
:meth:`Transport.call` to run the function itself, answering in the same
shape the gateway does (status 200 with ``x-hearth-function``,
``x-hearth-version``, ``x-request-id``, ``x-hearth-start`` headers and the
value's JSON, or an error status with hearth's error JSON), and hand every
other request (management) to an HTTP transport.
"""

import abc
from typing import Dict, Optional
from urllib.parse import quote


class Response:
    """One answer: status, headers (names in lower case) and body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class Transport(abc.ABC):
    """Sends one request and returns its answer, whatever its status.

    A failure to get an answer raises
    :class:`hearth.errors.HearthConnectionError`. A transport never retries
    a request that may have been processed.
    """

    #: How the daemon is named in error messages (``127.0.0.1:7700``).
    address: str = ""

    @abc.abstractmethod
    def request(
        self,
        method: str,
        path: str,
        body: Optional[bytes],
        headers: Dict[str, str],
        timeout: Optional[float],
    ) -> Response:
        """Send ``method path`` (path with its query string)."""

    def call(
        self,
        target: str,
        body: bytes,
        headers: Dict[str, str],
        timeout: Optional[float],
        page: bool = False,
    ) -> Response:
        """Call a function (or, with ``page``, a page): ``target`` is
        ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``; ``body`` the event's
        JSON (empty: ``{}``)."""
        prefix = "/page/" if page else "/fn/"
        return self.request("POST", prefix + quote(target, safe="@"), body, headers, timeout)

    def close(self) -> None:
        """Release connections (the transport stays usable)."""
