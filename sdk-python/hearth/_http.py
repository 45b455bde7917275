"""HTTP/1.1 transport over :mod:`http.client`, with keep-alive.

Each thread keeps one connection to the daemon (``threading.local``), so a
client shared by threads never interleaves two requests on a socket and a
thread's calls reuse theirs.

**When a request is sent again.** A kept-alive connection may have been
closed by the daemon while it sat idle (hearth waits ``server.header_timeout``,
30 s, for a connection's next request, and closes its connections at
shutdown). The transport sends
a request a second time, on a new connection, only when it is sure the
daemon did not process it:

1. Before reusing an idle connection it polls its socket: an idle
   HTTP/1.1 connection has nothing to read, so a readable socket means the
   daemon closed it (or sent something unasked); it is dropped and a new
   one opened. Nothing was sent, so this is not even a retry.
2. If sending on a *reused* connection fails (EPIPE, ECONNRESET), the
   daemon had already closed it: it cannot have read a whole request.
3. If a *reused* connection ends with no byte of an answer at all
   (``http.client.RemoteDisconnected``: end of stream where the status
   line should be), the daemon closed it as idle while the request was on
   its way: hearth's gateway closes a connection only when no request is
   in flight on it; a request it has begun to read always gets an answer,
   an error one if need be.

Only one such resend per request. Anything else (a timeout, a reset after
part of an answer, any failure on a fresh connection) raises
:class:`hearth.errors.HearthConnectionError`; the request may have run.
"""

import http.client
import select
import socket
import ssl
import threading
import weakref
from typing import Dict, Optional

from ._transport import Response, Transport
from .errors import HearthConnectionError

_SEND_FAILED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


def _idle_closed(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection was closed by its peer."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):
            p = select.poll()
            p.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
            return bool(p.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return True


class HttpTransport(Transport):
    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        address: str,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.address = address
        self._ssl = ssl_context
        self._local = threading.local()
        # Every live connection, to close them all from any thread.
        self._conns: "weakref.WeakSet[http.client.HTTPConnection]" = weakref.WeakSet()
        self._lock = threading.Lock()

    def _new(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self.scheme == "https":
            conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self._ssl
            )
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        with self._lock:
            self._conns.add(conn)
        return conn

    def _checkout(self, timeout: Optional[float]):
        """This thread's connection and whether it served a request before."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and (conn.sock is None or _idle_closed(conn)):
            conn.close()
            conn = None
        if conn is None:
            conn = self._new(timeout)
            self._local.conn = conn
            return conn, False
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, True

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def _unreachable(self, reason: object) -> HearthConnectionError:
        text = str(reason) or type(reason).__name__
        return HearthConnectionError(self.address, text)

    def request(
        self,
        method: str,
        path: str,
        body: Optional[bytes],
        headers: Dict[str, str],
        timeout: Optional[float],
    ) -> Response:
        for attempt in (1, 2):
            conn, reused = self._checkout(timeout)
            try:
                conn.request(method, path, body=body, headers=headers)
            except _SEND_FAILED as e:
                self._drop(conn)
                if reused and attempt == 1:
                    continue  # case 2: closed before our request
                raise self._unreachable(e) from e
            except socket.timeout as e:
                self._drop(conn)
                raise self._unreachable("timed out connecting or sending after %ss" % timeout) from e
            except (OSError, http.client.HTTPException) as e:
                self._drop(conn)
                raise self._unreachable(e) from e
            try:
                resp = conn.getresponse()
                data = resp.read()
            except http.client.RemoteDisconnected as e:
                self._drop(conn)
                if reused and attempt == 1:
                    continue  # case 3: closed as idle, no byte answered
                raise self._unreachable("the connection closed without an answer") from e
            except socket.timeout as e:
                self._drop(conn)
                raise self._unreachable(
                    "no answer within %ss; the request may still be running" % timeout
                ) from e
            except (OSError, http.client.HTTPException) as e:
                self._drop(conn)
                raise self._unreachable("connection lost while reading the answer: %s" % e) from e
            if resp.will_close:
                self._drop(conn)
            headers_out = {k.lower(): v for k, v in resp.getheaders()}
            return Response(resp.status, headers_out, data)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close()
        self._local = threading.local()
