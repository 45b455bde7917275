"""Tests of the hearth Python client.

``LiveTests`` run against a real daemon named by HEARTH_ADDR and
HEARTH_TOKEN (an admin token) and deploy their own fixture functions
through the SDK; without those variables they are skipped, saying why.
tests/sdk_python.rs runs this suite against a daemon of its own.
The other classes need no daemon.
"""

import asyncio
import base64
import http.server
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest
import uuid

import hearth
from hearth import errors
from hearth._bundle import read_files

ADDR = os.environ.get("HEARTH_ADDR", "")
TOKEN = os.environ.get("HEARTH_TOKEN", "")
# Fixture names are unique per run: the suite can run twice against one
# daemon (tests/sdk_python.rs runs it under two interpreters).
RUN = uuid.uuid4().hex[:6]
APP = "sdkpy-" + RUN


def fname(base):
    return "%s-%s" % (base, RUN)


ECHO = """import sys

def handler(event):
    print("echo says", event.get("tag"))
    print("echo warns", event.get("tag"), file=sys.stderr)
    return {"echo": event}
"""

BOOM = """def handler(event):
    raise ValueError("bad input: " + str(event.get("why")))
"""

SLEEPER = """import time

def handler(event):
    time.sleep(float(event.get("sleep", 0)))
    return {"slept": event.get("sleep", 0)}
"""


def write_function(root, name, code, limits="", files=None):
    """A function directory under ``root``: hearth.toml, main.py, files."""
    d = os.path.join(root, name)
    os.makedirs(d)
    manifest = 'name = "%s"\nruntime = "python"\nentry = "main.handler"\napp = "%s"\n' % (
        name,
        APP,
    )
    if limits:
        manifest += "\n[limits]\n" + limits + "\n"
    with open(os.path.join(d, "hearth.toml"), "w") as f:
        f.write(manifest)
    with open(os.path.join(d, "main.py"), "w") as f:
        f.write(code)
    for path, content in (files or {}).items():
        p = os.path.join(d, path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(content)
    return d


def eventually(cond, secs=15.0):
    end = time.monotonic() + secs
    while True:
        got = cond()
        if got or time.monotonic() > end:
            return got
        time.sleep(0.05)


class CodesTest(unittest.TestCase):
    """Every daemon error code (HEARTH_ERROR_CODES, from
    hearth_api::ErrorCode::ALL) has a class of its own."""

    def test_every_code_maps_to_a_class(self):
        listed = os.environ.get("HEARTH_ERROR_CODES")
        if not listed:
            print("HEARTH_ERROR_CODES is not set: checking the codes of docs/API.md only",
                  file=sys.stderr)
            codes = set(errors.CODES)
        else:
            codes = {c for c in listed.split(",") if c}
        self.assertTrue(codes)
        for code in sorted(codes):
            cls = errors.error_class(code)
            self.assertIsNot(cls, hearth.HearthError, "no class for %s" % code)
            self.assertEqual(cls.code, code)
            err = errors.error_from_response(
                500, {}, ('{"error": {"code": "%s", "message": "m"}}' % code).encode(), "x"
            )
            self.assertIsInstance(err, cls)
        if listed:
            self.assertEqual(set(errors.CODES), codes, "classes for codes the daemon lacks")
        self.assertTrue(errors.RETRYABLE_CODES <= codes)

    def test_unknown_code_is_a_hearth_error(self):
        err = errors.error_from_response(
            418,
            {"retry-after": "3", "x-request-id": "r1"},
            b'{"error": {"code": "new_code", "message": "m", "hint": "h", "version": 2}}',
            "x",
        )
        self.assertIs(type(err), hearth.HearthError)
        self.assertEqual((err.code, err.status, err.retry_after, err.version), ("new_code", 418, 3.0, 2))
        self.assertEqual(err.request_id, "r1")
        self.assertIn("hint: h", str(err))

    def test_not_json_is_an_unexpected_response(self):
        err = errors.error_from_response(502, {}, b"<html>bad gateway</html>", "h:1")
        self.assertIsInstance(err, hearth.UnexpectedResponse)
        self.assertIn("h:1", str(err))

    def test_families(self):
        self.assertTrue(issubclass(hearth.FunctionNotFound, hearth.NotFound))
        self.assertTrue(issubclass(hearth.BadManifest, hearth.InvalidInput))
        self.assertTrue(issubclass(hearth.QueueFull, hearth.Rejected))
        self.assertTrue(issubclass(hearth.FunctionError, hearth.CallFailed))
        self.assertTrue(issubclass(hearth.HearthConnectionError, ConnectionError))


class OfflineTests(unittest.TestCase):
    """What needs no daemon: addresses, bundles, connection failures."""

    def test_addresses(self):
        self.assertEqual(hearth.parse_addr("127.0.0.1:7700"), ("http", "127.0.0.1", 7700, "127.0.0.1:7700"))
        self.assertEqual(hearth.parse_addr("http://localhost:80/"), ("http", "localhost", 80, "localhost:80"))
        self.assertEqual(hearth.parse_addr("https://[::1]:7443"), ("https", "::1", 7443, "[::1]:7443"))
        with self.assertRaises(ValueError):
            hearth.parse_addr("ftp://x:1")
        with self.assertRaises(ValueError):
            hearth.parse_addr("127.0.0.1:7700/api")

    def test_default_address_comes_from_the_environment(self):
        old = os.environ.get("HEARTH_ADDR")
        os.environ["HEARTH_ADDR"] = "127.0.0.9:7123"
        try:
            self.assertEqual(hearth.Client().address, "127.0.0.9:7123")
        finally:
            if old is None:
                del os.environ["HEARTH_ADDR"]
            else:
                os.environ["HEARTH_ADDR"] = old
        self.assertEqual(hearth.Client("127.0.0.1:7700").address, "127.0.0.1:7700")

    def test_error_carries_a_function_error_code(self):
        # What a function raises to fail with one of its own error codes;
        # the worker knows it by its marker (shims/python/test_protocol.py
        # runs a function that raises this very class).
        e = hearth.Error("NOT_FOUND", "no program 42")
        self.assertIsInstance(e, Exception)
        self.assertIs(type(e).__hearth_error__, True)
        self.assertEqual((e.code, e.message, str(e)), ("NOT_FOUND", "no program 42", "no program 42"))
        bare = hearth.Error("GONE")
        self.assertEqual((bare.code, bare.message, str(bare)), ("GONE", None, "GONE"))
        self.assertIn("Error", hearth.__all__)
        self.assertFalse(issubclass(hearth.Error, hearth.HearthError), "a function's error is not a client error")
        with self.assertRaisesRegex(TypeError, "must be a str"):
            hearth.Error(404, "x")
        with self.assertRaisesRegex(ValueError, "empty"):
            hearth.Error("")

    def test_connection_failure_names_the_address(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        client = hearth.Client("127.0.0.1:%d" % port, timeout=5)
        self.addCleanup(client.close)
        with self.assertRaises(hearth.HearthConnectionError) as ctx:
            client.invoke("anything")
        text = str(ctx.exception)
        self.assertIn("127.0.0.1:%d" % port, text)
        self.assertIn("hearth serve", text)
        self.assertIn("HEARTH_ADDR", text)

    def test_bundle_skips_what_the_cli_skips(self):
        root = tempfile.mkdtemp()
        try:
            d = write_function(
                root,
                "bundle",
                "def handler(e):\n    return 1\n",
                files={
                    "lib/util.py": "X = 1\n",
                    "lib/__pycache__/util.cpython-311.pyc": "x",
                    "old.pyc": "x",
                    ".git/config": "x",
                    "node_modules/a/index.js": "x",
                    ".venv/bin/python": "x",
                    "run.sh": "#!/bin/sh\n",
                },
            )
            os.chmod(os.path.join(d, "run.sh"), 0o755)
            files = read_files(d)
            self.assertEqual(
                [f["path"] for f in files], ["hearth.toml", "lib/util.py", "main.py", "run.sh"]
            )
            by_path = {f["path"]: f for f in files}
            self.assertTrue(by_path["run.sh"]["executable"])
            self.assertFalse(by_path["main.py"]["executable"])
            self.assertEqual(base64.b64decode(by_path["lib/util.py"]["data"]), b"X = 1\n")
            os.symlink("main.py", os.path.join(d, "link.py"))
            with self.assertRaises(hearth.BadBundle) as ctx:
                read_files(d)
            self.assertIn("symbolic links", str(ctx.exception))
            with self.assertRaises(hearth.BadBundle):
                read_files(os.path.join(d, "missing"))
        finally:
            shutil.rmtree(root)


class _OneShotHandler(http.server.BaseHTTPRequestHandler):
    """Answers the first request of a connection, then, on the second,
    closes without a byte of answer (a keep-alive connection the server
    closed as idle)."""

    protocol_version = "HTTP/1.1"
    requests = []

    def do_GET(self):
        type(self).requests.append(self.path)
        # One handler object serves all the requests of its connection.
        if getattr(self, "served", False):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.served = True
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class KeepAliveTests(unittest.TestCase):
    def test_reused_connection_closed_without_answer_is_sent_again_once(self):
        _OneShotHandler.requests = []
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OneShotHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            client = hearth.Client("127.0.0.1:%d" % server.server_address[1], timeout=5)
            self.addCleanup(client.close)
            self.assertEqual(client.health(), {"status": "ok"})
            sock = client._transport._local.conn.sock
            self.assertIsNotNone(sock)
            # The second request goes on the kept connection, which closes
            # unanswered: sent again once, on a new connection.
            self.assertEqual(client.health(), {"status": "ok"})
            self.assertEqual(len(_OneShotHandler.requests), 3)
        finally:
            server.shutdown()
            server.server_close()

    def test_fresh_connection_closed_without_answer_is_not_sent_again(self):
        class Mute(_OneShotHandler):
            requests = []

            def do_GET(self):
                type(self).requests.append(self.path)
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mute)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            client = hearth.Client("127.0.0.1:%d" % server.server_address[1], timeout=5)
            self.addCleanup(client.close)
            with self.assertRaises(hearth.HearthConnectionError) as ctx:
                client.health()
            self.assertIn("without an answer", str(ctx.exception))
            self.assertEqual(len(Mute.requests), 1)
        finally:
            server.shutdown()
            server.server_close()


@unittest.skipUnless(ADDR and TOKEN, "HEARTH_ADDR and HEARTH_TOKEN are not set: no daemon to test against")
class LiveTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="hearth-sdk-")
        cls.client = hearth.Client(ADDR, TOKEN, timeout=60)
        cls.echo = fname("echo")
        cls.client.deploy(write_function(cls.root, cls.echo, ECHO), message="echo v1")

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        shutil.rmtree(cls.root, ignore_errors=True)

    def new(self, token, **kw):
        """A client of its own (closed at the end of the test)."""
        client = hearth.Client(ADDR, token, **kw)
        self.addCleanup(client.close)
        return client

    def fn_dir(self, base, code, limits="", files=None):
        name = fname(base)
        return name, write_function(self.root, name, code, limits, files)

    def wait_busy(self, name):
        """Wait until a worker of ``name`` runs a call."""

        def busy():
            pools = self.client._get("/api/v1/workers").get("pools", [])
            return any(p.get("function") == name and p.get("busy", 0) >= 1 for p in pools)

        self.assertTrue(eventually(busy, 10), "no busy worker of %s" % name)

    def records(self, name, n, **filters):
        """The function's records once there are at least ``n``."""
        got = eventually(lambda: (lambda r: r if len(r["calls"]) >= n else None)(
            self.client.logs(name, **filters)))
        self.assertTrue(got, "fewer than %d records of %s" % (n, name))
        return got

    # -- calls ----------------------------------------------------------

    def test_health(self):
        h = self.client.health()
        self.assertIn("status", h)

    def test_invoke(self):
        r = self.client.invoke(self.echo, {"tag": "a", "n": [1, 2]})
        self.assertEqual(r.value, {"echo": {"tag": "a", "n": [1, 2]}})
        self.assertEqual(r.function, self.echo)
        self.assertEqual(r.version, 1)
        self.assertTrue(r.request_id)
        self.assertGreater(r.duration_ms, 0)
        self.assertIn(r.start, ("warm", "generic", "fresh"))
        self.assertEqual(r.cold, r.start != "warm")
        self.assertIn("run", r.server_timing)
        self.assertEqual(r.attempts, 1)
        self.assertIsNone(r.log)
        # No event: {}; a warm worker the second time.
        r2 = self.client.invoke(self.echo)
        self.assertEqual(r2.value, {"echo": {}})
        self.assertFalse(r2.cold)
        self.assertEqual(r2.start, "warm")

    def test_page(self):
        boom, boom_dir = self.fn_dir("pboom", "def handler(event):\n    raise ValueError('no')\n")
        self.client.deploy(boom_dir)
        name = fname("page")
        d = os.path.join(self.root, name)
        os.makedirs(d)

        def write(required):
            with open(os.path.join(d, "hearth.toml"), "w") as f:
                f.write(
                    'name = "%s"\ntype = "page"\napp = "%s"\n'
                    '[fields.greeting]\nfn = "%s"\ninput = { tag = "$request.tag" }\n'
                    '[fields.rows.broken]\nfn = "%s"\n%s\n'
                    % (name, APP, self.echo, boom, "required = true" if required else 'fallback = "n/a"')
                )

        write(False)
        self.client.deploy(d)
        r = self.client.page(name, {"tag": "p"})
        self.assertIsInstance(r, hearth.PageResult)
        self.assertEqual(r.data["greeting"], {"echo": {"tag": "p"}})
        self.assertEqual(r.data["rows"]["broken"], "n/a")
        self.assertFalse(r.complete)
        self.assertEqual(r.errors[0]["field"], "rows.broken")
        self.assertEqual(r.errors[0]["fallback"], "static")
        self.assertEqual(r.version, 1)
        self.assertIn("critical", r.server_timing)
        self.assertIn("field.greeting", r.server_timing)
        # invoke() calls a page too; page() calls only pages.
        self.assertEqual(self.client.invoke(name, {"tag": "i"}).value["data"]["greeting"],
                         {"echo": {"tag": "i"}})
        with self.assertRaises(hearth.NotAPage):
            self.client.page(self.echo)
        # A required field that fails fails the page, naming it.
        write(True)
        self.client.deploy(d)
        with self.assertRaises(hearth.FieldFailed) as cm:
            self.client.page(name, {"tag": "p"})
        self.assertEqual(cm.exception.field, "rows.broken")
        self.assertEqual(cm.exception.status, 502)
        self.assertEqual(self.client.page(name, version=1).data["rows"]["broken"], "n/a")

    def test_connection_is_kept_alive(self):
        self.client.invoke(self.echo, {"tag": "k1"})
        sock = self.client._transport._local.conn.sock
        for i in range(3):
            self.client.invoke(self.echo, {"tag": "k%d" % i})
            self.client.functions()
        self.assertIs(self.client._transport._local.conn.sock, sock)

    @unittest.skipUnless(
        os.environ.get("HEARTH_IDLE_CLOSE"),
        "HEARTH_IDLE_CLOSE (the daemon's --header-timeout, seconds) is not set",
    )
    def test_connection_closed_by_the_daemon_is_replaced(self):
        client = self.new(TOKEN)
        client.invoke(self.echo, {"tag": "idle1"})
        sock = client._transport._local.conn.sock
        # The daemon closes a kept-alive connection idle that long.
        time.sleep(float(os.environ["HEARTH_IDLE_CLOSE"]) + 1.0)
        r = client.invoke(self.echo, {"tag": "idle2"})
        self.assertEqual(r.value["echo"]["tag"], "idle2")
        self.assertEqual(r.attempts, 1)
        self.assertIsNot(client._transport._local.conn.sock, sock)

    def test_invoke_with_log(self):
        r = self.client.invoke(self.echo, {"tag": "logged"}, log=True)
        self.assertIsNotNone(r.log)
        lines = sorted((line["stream"], line["text"]) for line in r.log)
        self.assertEqual(lines, [("stderr", "echo warns logged"), ("stdout", "echo says logged")])

    def test_call_record(self):
        r = self.client.invoke(self.echo, {"tag": "rec"})
        rec = eventually(lambda: self._record(r.request_id))
        self.assertEqual(rec["request_id"], r.request_id)
        self.assertEqual(rec["function"], self.echo)
        self.assertEqual(rec["outcome"], "ok")
        with self.assertRaises(hearth.CallNotFound) as ctx:
            self.client.call("no-such-call-" + RUN)
        self.assertEqual(ctx.exception.status, 404)

    def _record(self, request_id):
        try:
            return self.client.call(request_id)
        except hearth.CallNotFound:
            return None

    def test_logs(self):
        start = time.time() * 1000 - 1000
        r = self.client.invoke(self.echo, {"tag": "filtered"})
        got = self.records(self.echo, 1, request_id=r.request_id)
        self.assertEqual([c["request_id"] for c in got["calls"]], [r.request_id])
        self.assertEqual(got["function"], self.echo)
        self.assertIn("last_seq", got)
        self.assertIn("dropped", got)
        recent = self.client.logs(self.echo, since=int(start), status="ok", version=1, limit=1000)
        self.assertIn(r.request_id, [c["request_id"] for c in recent["calls"]])
        import datetime

        ago = self.client.logs(self.echo, since=datetime.timedelta(minutes=5), limit=2)
        self.assertLessEqual(len(ago["calls"]), 2)
        none = self.client.logs(self.echo, status="error")
        self.assertEqual(none["calls"], [])
        with self.assertRaises(hearth.FunctionNotFound):
            self.client.logs(fname("nobody"))
        with self.assertRaises(hearth.BadRequest):
            self.client.logs(self.echo, status="sideways")

    def test_function_not_found(self):
        with self.assertRaises(hearth.FunctionNotFound) as ctx:
            self.client.invoke(fname("missing"))
        e = ctx.exception
        self.assertEqual((e.code, e.status), ("function_not_found", 404))
        self.assertTrue(e.request_id)
        self.assertTrue(e.hint)
        self.assertIsInstance(e, hearth.NotFound)
        with self.assertRaises(hearth.FunctionNotFound):
            self.client.function(fname("missing"))

    def test_version_not_found(self):
        with self.assertRaises(hearth.VersionNotFound) as ctx:
            self.client.invoke(self.echo, version=99)
        self.assertEqual(ctx.exception.function, self.echo)

    def test_not_published(self):
        name, d = self.fn_dir("draft", ECHO)
        out = self.client.deploy(d, publish=False)
        self.assertFalse(out["live"])
        with self.assertRaises(hearth.NotPublished):
            self.client.invoke(name)
        # Version 1 is callable by number all the same.
        self.assertEqual(self.client.invoke(name, {"tag": 1}, version=1).version, 1)

    def test_function_error_has_traceback_and_is_not_retried(self):
        name, d = self.fn_dir("boom", BOOM)
        self.client.deploy(d)
        client = self.new(TOKEN, retries=5)
        with self.assertRaises(hearth.FunctionError) as ctx:
            client.invoke(name, {"why": "nope"}, log=True)
        e = ctx.exception
        self.assertEqual((e.code, e.status), ("function_error", 500))
        self.assertEqual((e.function, e.version), (name, 1))
        self.assertEqual(e.error_type, "ValueError")
        self.assertIn("bad input: nope", e.error_message)
        self.assertIn("Traceback", e.traceback)
        self.assertIn("ValueError", e.traceback)
        self.assertIn("Traceback", str(e))
        self.assertEqual(e.attempts, 1)
        self.assertIsNotNone(e.log)
        # One call ran, one record: the client did not send it again.
        self.records(name, 1)
        time.sleep(1.0)
        calls = self.client.logs(name)["calls"]
        self.assertEqual(len(calls), 1, calls)
        self.assertEqual(calls[0]["request_id"], e.request_id)
        self.assertEqual(calls[0]["outcome"], "function_error")

    def test_timeout(self):
        name, d = self.fn_dir("sleepy", SLEEPER, limits="timeout_ms = 300")
        self.client.deploy(d)
        with self.assertRaises(hearth.Timeout) as ctx:
            self.new(TOKEN, retries=3).invoke(name, {"sleep": 3})
        self.assertEqual((ctx.exception.code, ctx.exception.status), ("timeout", 504))
        self.assertEqual(ctx.exception.attempts, 1)

    def test_queue_full_is_retried(self):
        name, d = self.fn_dir(
            "busy", SLEEPER, limits="max_workers = 1\nmax_queue = 0\ntimeout_ms = 10000"
        )
        self.client.deploy(d)
        self.client.invoke(name, {"sleep": 0})  # a warm worker
        holder = {}

        def hold(seconds):
            with self.new(TOKEN) as client:
                holder["result"] = client.invoke(name, {"sleep": seconds})

        # Refused at once without retries.
        t = threading.Thread(target=hold, args=(2,))
        t.start()
        self.wait_busy(name)
        with self.assertRaises(hearth.Rejected) as ctx:
            self.new(TOKEN, retries=0).invoke(name, {"sleep": 0})
        e = ctx.exception
        self.assertIn(e.code, ("queue_full", "overloaded"))
        self.assertIn(e.status, (429, 503))
        self.assertIsNotNone(e.retry_after)
        self.assertEqual(e.attempts, 1)
        t.join()
        # With retries, a refused call waits Retry-After and gets through.
        t = threading.Thread(target=hold, args=(1.5,))
        t.start()
        self.wait_busy(name)
        r = self.new(TOKEN, retries=4).invoke(name, {"sleep": 0})
        t.join()
        self.assertEqual(r.value, {"slept": 0})
        self.assertGreaterEqual(r.attempts, 2)
        self.assertEqual(holder["result"].value, {"slept": 1.5})
        # The retry budget bounds the wait: none left, the refusal is raised.
        t = threading.Thread(target=hold, args=(2,))
        t.start()
        self.wait_busy(name)
        with self.assertRaises(hearth.Rejected) as ctx:
            self.new(TOKEN, retries=4, retry_wait=0.01).invoke(name, {"sleep": 0})
        t.join()
        self.assertEqual(ctx.exception.attempts, 1)

    def test_unauthorized(self):
        bad = self.new("hearth_" + "x" * 43)
        with self.assertRaises(hearth.Unauthorized) as ctx:
            bad.functions()
        self.assertEqual(ctx.exception.status, 401)
        with self.assertRaises(hearth.Unauthorized):
            self.new("").functions()  # no token at all
        # Calls of an open application need no token.
        self.assertEqual(bad.invoke(self.echo, {"tag": "t"}).value["echo"]["tag"], "t")

    def test_tokens_and_forbidden(self):
        token_name = "sdk-read-" + RUN
        made = self.client.create_token(token_name, ["read"])
        self.assertTrue(made["token"].startswith("hearth_"))
        self.assertEqual(made["info"]["name"], token_name)
        self.assertIn(token_name, [t["name"] for t in self.client.tokens()])
        reader = self.new(made["token"])
        self.assertIn(self.echo, [f["name"] for f in reader.functions()])
        with self.assertRaises(hearth.Forbidden) as ctx:
            reader.rollback(self.echo)
        self.assertEqual(ctx.exception.status, 403)
        with self.assertRaises(hearth.Forbidden):
            reader.deploy(self.fn_dir("forbidden", ECHO)[1])
        with self.assertRaises(hearth.Forbidden):
            reader.tokens()
        revoked = self.client.revoke_token(token_name)
        self.assertEqual(revoked["name"], token_name)
        self.assertTrue(revoked["revoked"])
        with self.assertRaises(hearth.Unauthorized):
            reader.functions()
        with self.assertRaises(hearth.TokenNotFound):
            self.client.revoke_token(token_name + "-none")

    # -- management -----------------------------------------------------

    def test_deploy_publish_rollback_versions(self):
        name, d = self.fn_dir("multi", "def handler(event):\n    return 1\n")
        first = self.client.deploy(d, message="one")
        self.assertEqual(
            (first["function"], first["version"], first["created"], first["live"]),
            (name, 1, True, True),
        )
        self.assertIn("hash", first)
        again = self.client.deploy(d)
        self.assertEqual((again["version"], again["created"]), (1, False))
        with self.assertRaises(hearth.NothingToRollBack) as ctx:
            self.client.rollback(name)
        self.assertEqual(ctx.exception.status, 409)
        with open(os.path.join(d, "main.py"), "w") as f:
            f.write("def handler(event):\n    return 2\n")
        second = self.client.deploy(d, message="two", publish=False)
        self.assertEqual((second["version"], second["live"]), (2, False))
        self.assertEqual(self.client.invoke(name).value, 1)
        pub = self.client.publish(name, 2, message="go")
        self.assertEqual((pub["function"], pub["version"], pub["previous"]), (name, 2, 1))
        self.assertEqual(self.client.invoke(name).value, 2)
        back = self.client.rollback(name, message="back")
        self.assertEqual((back["version"], back["previous"]), (1, 2))
        r = self.client.invoke(name)
        self.assertEqual((r.value, r.version), (1, 1))
        self.assertEqual(self.client.invoke(name, version=2).value, 2)
        vs = self.client.versions(name)
        self.assertEqual(vs["live_version"], 1)
        self.assertEqual(sorted(v["version"] for v in vs["versions"]), [1, 2])
        self.assertEqual({v["message"] for v in vs["versions"]}, {"one", "two"})
        self.assertEqual({v["file_count"] for v in vs["versions"]}, {2})
        history = self.client.releases(name)
        self.assertEqual(history[0]["version"], 1)
        self.assertIn("back", [h["message"] for h in history])
        with self.assertRaises(hearth.VersionNotFound):
            self.client.publish(name, 9)
        info = self.client.function(name)
        self.assertEqual((info["name"], info["live_version"], info["app"]), (name, 1, APP))
        self.assertIn(name, [f["name"] for f in self.client.functions()])

    def test_deploy_skips_like_the_cli(self):
        name, d = self.fn_dir(
            "skips",
            "def handler(event):\n    return 'ok'\n",
            files={"__pycache__/main.cpython-311.pyc": "junk", ".git/HEAD": "x", "data/a.txt": "a"},
        )
        self.client.deploy(d)
        vs = self.client.versions(name)
        self.assertEqual(vs["versions"][0]["file_count"], 3)  # hearth.toml, main.py, data/a.txt
        self.assertEqual(self.client.invoke(name).value, "ok")

    def test_bad_manifest(self):
        d = os.path.join(self.root, "bad-manifest-" + RUN)
        os.makedirs(d)
        with open(os.path.join(d, "hearth.toml"), "w") as f:
            f.write('name = "x"\nruntime = "cobol"\nentry = "main.handler"\n')
        with open(os.path.join(d, "main.py"), "w") as f:
            f.write("def handler(e):\n    return 1\n")
        with self.assertRaises(hearth.BadManifest) as ctx:
            self.client.deploy(d)
        self.assertEqual((ctx.exception.code, ctx.exception.status), ("bad_manifest", 400))
        self.assertIsInstance(ctx.exception, hearth.InvalidInput)

    def test_load_failed(self):
        name, d = self.fn_dir("noload", "import no_such_module_here\n\ndef handler(e):\n    return 1\n")
        with self.assertRaises(hearth.LoadFailed) as ctx:
            self.client.deploy(d)
        self.assertEqual(ctx.exception.status, 422)

    def test_aliases(self):
        name, d = self.fn_dir("aliased", "def handler(event):\n    return 'v1'\n")
        self.client.deploy(d)
        with open(os.path.join(d, "main.py"), "w") as f:
            f.write("def handler(event):\n    return 'v2'\n")
        self.client.deploy(d, publish=False)
        out = self.client.set_alias(name, "beta", 2, message="try it")
        self.assertEqual(out["function"], name)
        self.assertEqual(self.client.invoke(name, alias="beta").value, "v2")
        self.assertEqual(self.client.invoke(name).value, "v1")
        got = self.client.aliases(name)
        self.assertEqual([(a["alias"], a["target"]["version"]) for a in got], [("beta", 2)])
        self.client.set_alias(name, "beta", 1, split=(2, 0))
        self.assertEqual(self.client.invoke(name, alias="beta").value, "v1")
        with self.assertRaises(hearth.AliasNotFound):
            self.client.invoke(name, alias="gamma")
        with self.assertRaises(hearth.BadAlias):
            self.client.set_alias(name, "Not_Valid", 1)
        with self.assertRaises(ValueError):
            self.client.invoke(name, version=1, alias="beta")

    def test_stats(self):
        self.client.invoke(self.echo, {"tag": "s"})
        fs = self.client.stats(self.echo, window="1h")
        self.assertEqual(fs["function"], self.echo)
        self.assertGreaterEqual(fs["calls"], 1)
        self.assertIn("versions", fs)
        app = self.client.stats(app=APP)
        self.assertIn(self.echo, [f.get("function", f.get("name")) for f in app["functions"]])
        with self.assertRaises(hearth.AppNotFound):
            self.client.stats(app="no-app-" + RUN)
        with self.assertRaises(ValueError):
            self.client.stats()

    def test_bad_json_and_route_errors(self):
        # Through the transport: what the client itself never sends.
        t = self.client._transport
        headers = self.client._headers(True)
        resp = t.call(self.echo, b"{not json", headers, 10)
        self.assertIsInstance(errors.error_from_response(resp.status, resp.headers, resp.body, ADDR), hearth.BadJson)
        resp = t.request("GET", "/api/v1/nothing-here", None, headers, 10)
        self.assertIsInstance(errors.error_from_response(resp.status, resp.headers, resp.body, ADDR), hearth.RouteNotFound)
        resp = t.request("DELETE", "/api/v1/functions", None, headers, 10)
        self.assertIsInstance(errors.error_from_response(resp.status, resp.headers, resp.body, ADDR), hearth.MethodNotAllowed)
        plain = dict(headers, **{"Content-Type": "text/plain"})
        resp = t.request("POST", "/api/v1/functions/%s/rollback" % self.echo, b"{}", plain, 10)
        self.assertIsInstance(errors.error_from_response(resp.status, resp.headers, resp.body, ADDR), hearth.UnsupportedMediaType)

    # -- asyncio --------------------------------------------------------

    def test_async_client(self):
        async def main():
            async with hearth.AsyncClient(ADDR, TOKEN, max_workers=4) as client:
                results = await asyncio.gather(
                    *[client.invoke(self.echo, {"tag": i}) for i in range(6)]
                )
                fns = await client.functions()
                one = await client.function(self.echo)
                vs = await client.versions(self.echo)
                logs = await client.logs(self.echo, limit=1)
                health = await client.health()
                with self.assertRaises(hearth.FunctionNotFound):
                    await client.invoke(fname("missing"))
                return results, fns, one, vs, logs, health

        results, fns, one, vs, logs, health = asyncio.run(main())
        self.assertEqual([r.value["echo"]["tag"] for r in results], list(range(6)))
        self.assertIn(self.echo, [f["name"] for f in fns])
        self.assertEqual(one["name"], self.echo)
        self.assertEqual(vs["function"], self.echo)
        self.assertLessEqual(len(logs["calls"]), 1)
        self.assertIn("status", health)


if __name__ == "__main__":
    unittest.main()
