"""The Python shim's tests: its side of the shared protocol vectors
(shims/protocol-vectors.json), and workers started the way the daemon starts
them (pipes on fds 3 and 4) for what `load` does before the import: the user
switch (`uid`, `gid`) and the temporary directory (`tmp`); nested calls
(the test plays the daemon: it reads the handler's `call` frames and
answers them with `call_result`s); and the examples that call
(examples/python/recommended-row, catalog-item). The user switch tests need
root and are skipped, with the reason, otherwise.

    cd shims/python && python3 -m unittest -v test_protocol
"""

import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import msgpack

import hearth_worker

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "protocol-vectors.json")


def load_vectors():
    with open(VECTORS, encoding="utf-8") as f:
        data = json.load(f)
    assert data["protocol"] == hearth_worker.PROTOCOL
    return data["vectors"]


class VectorTests(unittest.TestCase):
    def test_every_frame_decodes_to_its_meaning(self):
        for v in load_vectors():
            with self.subTest(v["name"]):
                read_fd, write_fd = os.pipe()
                try:
                    os.write(write_fd, bytes.fromhex(v["hex"]))
                    os.close(write_fd)
                    self.assertEqual(hearth_worker.read_frame(read_fd), v["message"])
                finally:
                    os.close(read_fd)

    def test_worker_messages_encode_to_the_vector_bytes(self):
        for v in load_vectors():
            if v["direction"] != "worker_to_daemon":
                continue
            with self.subTest(v["name"]):
                self.assertEqual(hearth_worker.encode_frame(v["message"]).hex(), v["hex"])

    def test_calls_encode_to_the_vector_bytes(self):
        vectors = {v["name"]: v for v in load_vectors()}
        for name, args, options in (
            ("call", ("programs", {"user": "u1", "limit": 3}), {}),
            ("call_with_options", ("user-interests", {"user": "u1"}), {"version": 2, "timeout_ms": 250}),
            ("call_with_alias", ("programs", None), {"alias": "canary"}),
        ):
            with self.subTest(name):
                message = hearth_worker.call_frame(*args, **options)
                message.update(id=vectors[name]["message"]["id"], parent="5f3a0c1200000007")
                self.assertEqual(hearth_worker.encode_frame(message).hex(), vectors[name]["hex"])

    def test_end_of_file_means_closed(self):
        read_fd, write_fd = os.pipe()
        os.write(write_fd, b"\x00\x00\x00\x05ab")
        os.close(write_fd)
        with self.assertRaises(hearth_worker.ChannelClosed):
            hearth_worker.read_frame(read_fd)
        os.close(read_fd)

    def test_oversized_frame_is_refused(self):
        read_fd, write_fd = os.pipe()
        os.write(write_fd, b"\xff\xff\xff\xff")
        os.close(write_fd)
        with self.assertRaises(hearth_worker.ProtocolError):
            hearth_worker.read_frame(read_fd)
        os.close(read_fd)


class HandlerShapeTests(unittest.TestCase):
    def test_arity(self):
        self.assertTrue(hearth_worker.takes_one_argument(lambda event: None))
        self.assertFalse(hearth_worker.takes_one_argument(lambda event, context: None))
        self.assertFalse(hearth_worker.takes_one_argument(lambda *args: None))
        self.assertTrue(hearth_worker.takes_one_argument(lambda event, *, debug=False: None))


# ---------------------------------------------------------------- end to end

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hearth_worker.py")
MSGPACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(msgpack.__file__)))
NOBODY = 65534
PR_SET_PDEATHSIG = 1


def set_death_signal():
    """What the daemon does at spawn: SIGKILL when the parent goes."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, 9)


def become(uid, gid):
    def switch():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    return switch


class Worker:
    """The shim in a child process: fd 3 = daemon -> worker, fd 4 = worker -> daemon."""

    def __init__(self, python=sys.executable, preexec=(), msgpack_dir=MSGPACK_DIR):
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        # Park the child's ends above 3/4 so the dup2s cannot clobber each other.
        child_in = fcntl.fcntl(to_r, fcntl.F_DUPFD_CLOEXEC, 100)
        child_out = fcntl.fcntl(from_w, fcntl.F_DUPFD_CLOEXEC, 100)
        for fd in (to_r, from_w):
            os.close(fd)

        def start():
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)
            for step in preexec:
                step()

        self.proc = subprocess.Popen(
            [python, "-S", SHIM],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(3, 4),
            preexec_fn=start,
            env={
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "LANG": "C.UTF-8",
                "PYTHONPATH": os.pathsep.join([os.path.dirname(SHIM), msgpack_dir]),
                "PYTHONDONTWRITEBYTECODE": "1",
                "TMPDIR": "/tmp",
                "HEARTH_PROTOCOL": "1",
            },
            cwd="/",
        )
        os.close(child_in)
        os.close(child_out)
        self.to_w, self.from_r = to_w, from_r
        self.logs = []
        self.drains = [threading.Thread(target=self._drain, args=(s,), daemon=True) for s in (self.proc.stdout, self.proc.stderr)]
        for t in self.drains:
            t.start()
        ready = self.recv()
        assert ready["t"] == "ready", ready

    def _drain(self, stream):
        for chunk in iter(lambda: stream.read1(1 << 16), b""):
            self.logs.append(chunk)

    def send(self, message):
        os.write(self.to_w, hearth_worker.encode_frame(message))

    def recv(self, timeout=10):
        ready, _, _ = select.select([self.from_r], [], [], timeout)
        if not ready:
            raise AssertionError("the worker sent nothing in %s s" % timeout)
        return hearth_worker.read_frame(self.from_r)

    def silent(self, timeout=0.3):
        """True when the worker sends nothing for `timeout` seconds."""
        return not select.select([self.from_r], [], [], timeout)[0]

    def load(self, dir, **fields):
        message = {"t": "load", "id": "load", "dir": dir, "entry": "main.handler", "function": "fn", "version": 1}
        message.update(timeout_ms=3000, memory_mb=128, **fields)
        self.send(message)
        return self.recv()

    def invoke(self, payload=None, id="r1"):
        self.send({"t": "invoke", "id": id, "deadline_ms": int(time.time() * 1000) + 10000, "payload": payload})
        return self.recv()

    def close(self):
        """Close fd 3 (end of file for the worker) and return its exit status."""
        os.close(self.to_w)
        self.to_w = None
        return self.proc.wait(10)

    def dispose(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for fd in (self.to_w, self.from_r):
            if fd is not None:
                os.close(fd)
        self.to_w = self.from_r = None
        for t in self.drains:
            t.join(5)
        self.proc.stdout.close()
        self.proc.stderr.close()


# A handler that tells who it runs as and where its temporary files go.
WHO_AM_I = """
import ctypes, os, tempfile

def handler(event, context):
    signal = ctypes.c_int(-1)
    ctypes.CDLL(None).prctl(2, ctypes.byref(signal))  # PR_GET_PDEATHSIG
    try:
        os.setuid(0)
        back_to_root = "allowed"
    except PermissionError as exc:
        back_to_root = exc.strerror
    fd, path = tempfile.mkstemp()
    os.close(fd)
    os.unlink(path)
    return {
        "uid": list(os.getresuid()),
        "gid": list(os.getresgid()),
        "groups": os.getgroups(),
        "env": [os.environ.get(name) for name in ("TMPDIR", "TMP", "TEMP")],
        "gettempdir": tempfile.gettempdir(),
        "mkstemp_dir": os.path.dirname(path),
        "setuid_0": back_to_root,
        "death_signal": signal.value,
        "cwd": os.getcwd(),
    }
"""


def python_for(uid, gid):
    """An interpreter whose standard library uid/gid can read (a pyenv under a
    0700 /root is not one), or None."""
    for python in (sys.executable, "/usr/bin/python3"):
        if not os.path.exists(python):
            continue
        try:
            probe = subprocess.run([python, "-S", "-c", "import os, json"], preexec_fn=become(uid, gid), capture_output=True)
        except OSError:  # not even executable by that user
            continue
        if probe.returncode == 0:
            return python
    return None


class UserSwitchTests(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="hearth-py-shim-")
        self.addCleanup(shutil.rmtree, self.root, True)

    def function_dir(self, source=WHO_AM_I):
        code = os.path.join(self.root, "code")
        os.mkdir(code)
        with open(os.path.join(code, "main.py"), "w") as f:
            f.write(source)
        # what the daemon does: the code is readable by the function's group
        for path in (self.root, code):
            os.chmod(path, 0o755)
        os.chmod(os.path.join(code, "main.py"), 0o644)
        return code

    def temp_dir(self, uid, gid):
        tmp = os.path.join(self.root, "tmp")
        os.mkdir(tmp, 0o700)
        if os.geteuid() == 0:
            os.chown(tmp, uid, gid)
        return tmp

    def worker(self, **kwargs):
        w = Worker(**kwargs)
        self.addCleanup(w.dispose)
        return w

    def test_root_worker_becomes_the_functions_user_before_the_import(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: the daemon starts generic workers as root (running as uid %d)" % os.geteuid())
        python = python_for(NOBODY, NOBODY)
        if python is None:
            self.skipTest("no Python here whose standard library uid %d can read" % NOBODY)
        code, tmp = self.function_dir(), self.temp_dir(NOBODY, NOBODY)
        # started as the daemon starts it: root, with groups to clear and a parent-death signal
        w = self.worker(python=python, preexec=(lambda: os.setgroups([0, 1, 2]), set_death_signal))
        loaded = w.load(code, env={"TMPDIR": "/from/env", "HEARTH_FUNCTION": "fn"}, uid=NOBODY, gid=NOBODY, tmp=tmp)
        self.assertEqual(loaded["t"], "loaded", loaded)
        reply = w.invoke()
        self.assertEqual(reply["t"], "result", reply)
        self.assertEqual(
            reply["value"],
            {
                "uid": [NOBODY] * 3,
                "gid": [NOBODY] * 3,
                "groups": [],
                "env": [tmp] * 3,  # `tmp` wins over an env TMPDIR
                "gettempdir": tmp,
                "mkstemp_dir": tmp,
                "setuid_0": "Operation not permitted",
                "death_signal": 9,  # set again after the switch cleared it
                "cwd": code,
            },
        )
        self.assertEqual(w.close(), 0)

    def test_a_worker_that_may_not_switch_answers_permission_error(self):
        code = self.function_dir()
        if os.geteuid() == 0:
            # a worker already running as nobody, asked for root
            python = python_for(NOBODY, NOBODY)
            if python is None:
                self.skipTest("no Python here whose standard library uid %d can read" % NOBODY)
            # it must import msgpack as nobody: a copy where nobody can read it
            site = os.path.join(self.root, "site")
            shutil.copytree(os.path.dirname(os.path.abspath(msgpack.__file__)), os.path.join(site, "msgpack"))
            for path, _, _ in os.walk(site):
                os.chmod(path, 0o755)
            w = self.worker(python=python, preexec=(become(NOBODY, NOBODY),), msgpack_dir=site)
            want_uid, want_gid = 0, 0
        else:
            w = self.worker()
            want_uid, want_gid = os.getuid() + 1, os.getgid()
        reply = w.load(code, uid=want_uid, gid=want_gid)
        self.assertEqual(reply["t"], "error", reply)
        self.assertEqual(reply["kind"], "PermissionError")
        self.assertRegex(reply["message"], r"cannot switch the worker from uid \d+ gid \d+ to uid %d gid %d: setgroups" % (want_uid, want_gid))
        self.assertIn("run hearth serve as root, or start it with --worker-user set to its own user", reply["message"])
        self.assertEqual(reply["traceback"], "")
        # the worker stays unusable: no code is loaded by a later load either
        again = w.load(code)
        self.assertEqual((again["t"], again["kind"]), ("error", "PermissionError"))
        self.assertIn("start a new worker", again["message"])
        self.assertEqual(w.close(), 0)

    def test_the_same_ids_are_no_switch(self):
        # a daemon that is not root (or switched at spawn) sends its own ids
        w = self.worker()
        code = self.function_dir()
        loaded = w.load(code, uid=os.getuid(), gid=os.getgid())
        self.assertEqual(loaded["t"], "loaded", loaded)
        value = w.invoke()["value"]
        self.assertEqual(value["uid"], list(os.getresuid()))
        self.assertEqual(value["env"], ["/tmp", None, None])  # no `tmp`: the environment as it was
        self.assertEqual(w.close(), 0)

    def test_tmp_alone_sets_the_temporary_directory(self):
        w = self.worker()
        code, tmp = self.function_dir(), self.temp_dir(os.getuid(), os.getgid())
        self.assertEqual(w.load(code, tmp=tmp)["t"], "loaded")
        value = w.invoke()["value"]
        self.assertEqual((value["env"], value["gettempdir"], value["mkstemp_dir"]), ([tmp] * 3, tmp, tmp))
        self.assertEqual(value["uid"], list(os.getresuid()))
        self.assertEqual(w.close(), 0)

    def test_malformed_fields_are_protocol_errors(self):
        code = self.function_dir()
        for fields, text in (
            ({"uid": 1000}, "load has gid None"),
            ({"gid": 1000}, "load has uid None"),
            ({"uid": -1, "gid": 0}, "load has uid -1"),
            ({"tmp": 5}, "load has tmp 5"),
        ):
            with self.subTest(fields):
                w = self.worker()
                reply = w.load(code, **fields)
                self.assertEqual((reply["t"], reply["kind"]), ("error", "ProtocolError"), reply)
                self.assertIn(text, reply["message"])
                w.close()


# ---------------------------------------------------------------- nested calls
# The test plays the daemon: it reads the handler's `call` frames and answers
# them with `call_result`s (PROTOCOL.md, "Nested calls").

NESTED = '''
import asyncio
import hearth

SAVED = {}


def ok(event, context):
    return {"ok": True}


def error_fields(exc):
    return {
        "class": type(exc).__name__,
        "is_hearth": isinstance(exc, hearth.InvokeError),
        "code": exc.code,
        "message": exc.message,
        "function": exc.function,
        "version": exc.version,
        "request_id": exc.request_id,
        "retryable": exc.retryable,
        "error": exc.error,
        "str": str(exc),
    }


def one(event, context):
    value = context.invoke(event["name"], event.get("event"), **event.get("options", {}))
    return {"got": value}


def catching(event, context):
    try:
        context.invoke("user-interests", {"user": "u1"})
    except hearth.InvokeError as exc:
        return error_fields(exc)
    return "no error"


def uncaught(event, context):
    return context.invoke("user-interests", {"user": "u1"})


def many(event, context):
    results = context.invoke_many([
        ("programs", {"limit": 3}),
        ("user-interests", {"user": "u1"}, {"version": 2, "timeout_ms": 250}),
        ("catalog-item", {"id": 7}, {"alias": "canary"}),
    ])
    return [error_fields(r) if isinstance(r, Exception) else r for r in results]


async def gathered(event, context):
    async def tick():
        await asyncio.sleep(0)
        return "tick"
    a, b, t = await asyncio.gather(
        context.invoke_async("programs", {"limit": 2}),
        context.invoke_async("user-interests", {"user": "u1"}, timeout_ms=100),
        tick(),
    )
    c = None
    try:
        await context.invoke_async("missing")
    except context.InvokeError as exc:
        c = exc.code
    d = await context.invoke_many_async([("programs", None), ("user-interests", None)])
    return [a, b, t, c, [x.code if isinstance(x, Exception) else x for x in d]]


async def abandoned(event, context):
    try:
        await asyncio.wait_for(context.invoke_async("slow"), 0.05)
    except asyncio.TimeoutError:
        return "gave up"


def sync_in_async_loop(event, context):
    async def main():
        return await context.invoke_async("programs")
    return asyncio.run(main())


def stash(event, context):
    SAVED["context"] = context
    return "stashed"


def stale(event, context):
    try:
        SAVED["context"].invoke("programs")
    except RuntimeError as exc:
        return str(exc)


def invalid(event, context):
    attempts = [
        lambda: context.invoke(""),
        lambda: context.invoke(5),
        lambda: context.invoke("f", version=2, alias="canary"),
        lambda: context.invoke("f", version=0),
        lambda: context.invoke("f", version="2"),
        lambda: context.invoke("f", alias=""),
        lambda: context.invoke("f", timeout_ms=0),
        lambda: context.invoke("f", timeout_ms=1.5),
        lambda: context.invoke("f", timeout_ms=True),
        lambda: context.invoke("f", {"when": {1, 2}}),
        lambda: context.invoke("f", 1 << 70),
        lambda: context.invoke_many("f"),
        lambda: context.invoke_many([("f",)]),
        lambda: context.invoke_many([("f", 1, {"retries": 2})]),
        lambda: context.invoke_many([("f", 1, "fast")]),
        lambda: context.invoke_many([("good", 1), ("", 2)]),
        lambda: context.invoke_many([("good", 1), ("bad", object())]),
    ]
    out = []
    for attempt in attempts:
        try:
            attempt()
            out.append("no error")
        except (TypeError, ValueError) as exc:
            out.append([type(exc).__name__, str(exc)])
    out.append(context.invoke_many([]))
    return out


def handler(event, context):
    return globals()[event.pop("do")](event, context)
'''


class NestedCallTests(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="hearth-py-calls-")
        self.addCleanup(shutil.rmtree, self.root, True)

    def worker(self, source=NESTED, files=()):
        code = os.path.join(self.root, "code")
        os.makedirs(code, exist_ok=True)
        with open(os.path.join(code, "main.py"), "w") as f:
            f.write(source)
        for name, text in files:
            with open(os.path.join(code, name), "w") as f:
                f.write(text)
        w = Worker()
        self.addCleanup(w.dispose)
        loaded = w.load(code)
        self.assertEqual(loaded["t"], "loaded", loaded)
        return w

    def start(self, w, do, id="r1", **event):
        event["do"] = do
        w.send({"t": "invoke", "id": id, "deadline_ms": int(time.time() * 1000) + 10000, "payload": event})

    def answer(self, w, call_id, value=None, error=None):
        w.send({"t": "call_result", "id": call_id, "ok": error is None, "value": value, "error": error})

    def expect_call(self, w, **fields):
        call = w.recv()
        self.assertEqual(call["t"], "call", call)
        for key, value in fields.items():
            self.assertEqual(call.get(key), value, (key, call))
        return call

    def result(self, w, id="r1"):
        reply = w.recv()
        self.assertEqual((reply["t"], reply["id"]), ("result", id), reply)
        return reply["value"]

    def test_invoke_sends_a_call_and_returns_the_value(self):
        w = self.worker()
        self.start(w, "one", name="programs", event={"user": "u1", "limit": 3}, options={"version": 2, "timeout_ms": 250})
        call = self.expect_call(w)
        self.assertEqual(
            list(call.items()),
            [("t", "call"), ("id", "c1"), ("parent", "r1"), ("function", "programs"),
             ("payload", {"user": "u1", "limit": 3}), ("version", 2), ("timeout_ms", 250)],
        )
        self.answer(w, "c1", [{"id": 1, "title": "News"}])
        self.assertEqual(self.result(w), {"got": [{"id": 1, "title": "News"}]})
        # the next invoke's call: the counter goes on, the parent is that invoke
        self.start(w, "one", id="r2", name="programs", options={"alias": "canary"})
        call = self.expect_call(w, id="c2", parent="r2", alias="canary", payload=None)
        self.assertNotIn("version", call)
        self.assertNotIn("timeout_ms", call)
        self.answer(w, "c2", "Welcome")
        self.assertEqual(self.result(w, "r2"), {"got": "Welcome"})
        self.assertEqual(w.close(), 0)

    def test_an_error_call_result_raises_invoke_error_with_every_attribute(self):
        w = self.worker()
        vectors = {v["name"]: v["message"] for v in load_vectors()}
        self.start(w, "catching")
        call = self.expect_call(w, function="user-interests")
        w.send(dict(vectors["call_result_function_error"], id=call["id"]))
        self.assertEqual(
            self.result(w),
            {
                "class": "InvokeError",
                "is_hearth": True,
                "code": "function_error",
                "message": "user-interests@2 raised KeyError: 'u1'",
                "function": "user-interests",
                "version": 2,
                "request_id": "5f3a0c1200000008",
                "retryable": False,
                "error": {
                    "type": "KeyError",
                    "message": "user-interests@2 raised KeyError: 'u1'",
                    "traceback": "Traceback (most recent call last):\n  File \"main.py\", line 3, in handler\nKeyError: 'u1'\n",
                },
                "str": "call to user-interests failed (function_error): user-interests@2 raised KeyError: 'u1'",
            },
        )
        # a refusal: no callee error, and retryable as the daemon says
        self.start(w, "catching", id="r2")
        call = self.expect_call(w)
        self.answer(w, call["id"], error={"code": "queue_full", "message": "user-interests has 64 calls queued",
                                          "function": "user-interests", "version": None, "request_id": None,
                                          "retryable": True})
        value = self.result(w, "r2")
        self.assertEqual((value["code"], value["retryable"], value["error"], value["version"]), ("queue_full", True, None, None))
        # not caught: the invoke fails with it
        self.start(w, "uncaught", id="r3")
        call = self.expect_call(w)
        w.send(dict(vectors["call_result_recursion"], id=call["id"]))
        reply = w.recv()
        self.assertEqual((reply["t"], reply["id"], reply["kind"]), ("error", "r3", "InvokeError"), reply)
        self.assertIn("call to programs failed (recursion): programs is already in the call chain", reply["message"])
        self.assertIn("main.py", reply["traceback"])
        self.assertNotIn("hearth_worker.py", reply["traceback"])
        self.assertEqual(w.close(), 0)

    def test_invoke_many_sends_every_call_before_waiting(self):
        w = self.worker()
        self.start(w, "many")
        calls = [w.recv() for _ in range(3)]  # all three before any answer
        self.assertEqual([c["t"] for c in calls], ["call"] * 3)
        self.assertEqual([c["function"] for c in calls], ["programs", "user-interests", "catalog-item"])
        self.assertEqual(len({c["id"] for c in calls}), 3)
        self.assertEqual({c["parent"] for c in calls}, {"r1"})
        self.assertEqual((calls[1]["version"], calls[1]["timeout_ms"], calls[2]["alias"]), (2, 250, "canary"))
        # answered in reverse order
        self.answer(w, calls[2]["id"], {"id": 7, "title": "Tour"})
        self.answer(w, calls[1]["id"], error={"code": "timeout", "message": "user-interests took over 250 ms",
                                              "function": "user-interests", "version": 2,
                                              "request_id": "5f3a0c1200000009", "retryable": False})
        self.answer(w, calls[0]["id"], [{"id": 1}])
        value = self.result(w)
        self.assertEqual(value[0], [{"id": 1}])
        self.assertEqual((value[1]["class"], value[1]["code"], value[1]["request_id"]), ("InvokeError", "timeout", "5f3a0c1200000009"))
        self.assertEqual(value[2], {"id": 7, "title": "Tour"})
        self.assertEqual(w.close(), 0)

    def test_invoke_async_runs_calls_concurrently(self):
        w = self.worker()
        self.start(w, "gathered")
        first, second = w.recv(), w.recv()  # both gathered calls are out before either is answered
        self.assertEqual((first["function"], second["function"]), ("programs", "user-interests"))
        self.assertEqual(second["timeout_ms"], 100)
        self.answer(w, second["id"], {"genres": ["news"]})
        self.answer(w, first["id"], [1, 2])
        missing = self.expect_call(w, function="missing")
        self.answer(w, missing["id"], error={"code": "function_not_found", "message": "no function missing",
                                             "function": "missing", "version": None, "request_id": None,
                                             "retryable": False})
        a, b = w.recv(), w.recv()
        self.answer(w, b["id"], "B")
        self.answer(w, a["id"], error={"code": "overloaded", "message": "busy", "function": "programs",
                                       "version": None, "request_id": None, "retryable": True})
        self.assertEqual(self.result(w), [[1, 2], {"genres": ["news"]}, "tick", "function_not_found", ["overloaded", "B"]])
        self.assertEqual(w.close(), 0)

    def test_invoke_async_from_a_loop_of_the_handlers_own(self):
        w = self.worker()
        self.start(w, "sync_in_async_loop")
        call = self.expect_call(w, function="programs")
        w.send({"t": "ping", "id": "p1"})
        self.assertEqual(w.recv(), {"t": "pong", "id": "p1"})
        self.answer(w, call["id"], "from asyncio.run")
        self.assertEqual(self.result(w), "from asyncio.run")
        self.assertEqual(w.close(), 0)

    def test_ping_is_answered_while_a_handler_waits(self):
        for do, options in (("one", {"name": "programs"}), ("gathered", {})):
            with self.subTest(do):
                w = self.worker()
                self.start(w, do, **options)
                call = self.expect_call(w, function="programs")
                if do == "gathered":
                    self.expect_call(w, function="user-interests")
                w.send({"t": "ping", "id": "p1"})
                self.assertEqual(w.recv(), {"t": "pong", "id": "p1"})
                w.send({"t": "ping", "id": "p2"})
                self.assertEqual(w.recv(), {"t": "pong", "id": "p2"})
                self.answer(w, call["id"], "late")
                w.dispose()

    def test_a_pipelined_invoke_runs_after_the_waiting_one_is_answered(self):
        for do in ("one", "gathered"):
            with self.subTest(do):
                w = self.worker()
                self.start(w, do, name="programs")
                call = self.expect_call(w, parent="r1")
                if do == "gathered":
                    other = self.expect_call(w, parent="r1")
                self.start(w, "ok", id="r2")
                self.start(w, "one", id="r3", name="catalog-item")
                w.send({"t": "ping", "id": "p1"})
                self.assertEqual(w.recv(), {"t": "pong", "id": "p1"})  # r2 did not run meanwhile
                self.assertTrue(w.silent())
                self.answer(w, call["id"], "P")
                if do == "gathered":
                    self.answer(w, other["id"], "U")
                    for _ in range(2):  # the rest of the handler: answer what it asks
                        c = w.recv()
                        self.assertEqual((c["t"], c["parent"]), ("call", "r1"), c)
                        self.answer(w, c["id"], "x")
                    self.answer(w, w.recv()["id"], "y")
                    first = w.recv()
                else:
                    first = w.recv()
                self.assertEqual((first["t"], first["id"]), ("result", "r1"), first)
                self.assertEqual(self.result(w, "r2"), {"ok": True})
                call = self.expect_call(w, parent="r3", function="catalog-item")
                self.answer(w, call["id"], {"id": 7})
                self.assertEqual(self.result(w, "r3"), {"got": {"id": 7}})
                self.assertEqual(w.close(), 0)

    def test_unknown_call_result_ids_are_ignored(self):
        w = self.worker()
        self.start(w, "one", name="programs")
        call = self.expect_call(w)
        self.answer(w, "c99", "not mine")
        self.answer(w, "c1x", error={"code": "timeout", "message": "?", "function": "x", "version": None,
                                     "request_id": None, "retryable": False})
        self.answer(w, call["id"], "mine")
        self.assertEqual(self.result(w), {"got": "mine"})
        self.answer(w, call["id"], "again, between invokes")
        w.send({"t": "ping", "id": "p1"})
        self.assertEqual(w.recv(), {"t": "pong", "id": "p1"})
        # a call the handler gave up on: its late answer is ignored too
        self.start(w, "abandoned", id="r2")
        slow = self.expect_call(w, function="slow", parent="r2")
        self.assertEqual(self.result(w, "r2"), "gave up")
        self.answer(w, slow["id"], "too late")
        self.start(w, "one", id="r3", name="programs")
        call = self.expect_call(w, parent="r3")
        self.answer(w, slow["id"], "much too late")
        self.answer(w, call["id"], "fine")
        self.assertEqual(self.result(w, "r3"), {"got": "fine"})
        self.assertEqual(w.close(), 0)

    def test_arguments_are_checked_before_anything_is_sent(self):
        w = self.worker()
        self.start(w, "invalid")
        reply = w.recv()  # the result: no call frame came first
        self.assertEqual(reply["t"], "result", reply)
        out = reply["value"]
        kinds = [o[0] if isinstance(o, list) and len(o) == 2 else o for o in out[:-1]]
        self.assertEqual(
            kinds,
            ["ValueError", "TypeError", "ValueError", "ValueError", "TypeError", "ValueError", "ValueError",
             "TypeError", "TypeError", "TypeError", "TypeError", "TypeError", "TypeError", "TypeError",
             "TypeError", "ValueError", "TypeError"],
        )
        self.assertIn("must be named", out[0][1])
        self.assertIn("not int", out[1][1])
        self.assertIn("a version or an alias, not both", out[2][1])
        self.assertIn("timeout_ms must be a positive integer", out[6][1])
        self.assertIn("timeout_ms must be an int, not bool", out[8][1])
        self.assertIn("the event for f cannot be sent", out[9][1])
        self.assertIn("set", out[9][1])
        self.assertIn("unknown option(s) retries", out[13][1])
        self.assertIn("the event for bad cannot be sent", out[16][1])
        self.assertEqual(out[-1], [])
        self.assertTrue(w.silent())
        self.assertEqual(w.close(), 0)

    def test_a_context_after_its_invoke_is_refused(self):
        w = self.worker()
        self.start(w, "stash")
        self.assertEqual(self.result(w), "stashed")
        self.start(w, "stale", id="r2")
        self.assertEqual(self.result(w, "r2"), "invoke r1 has already been answered: call other functions while its handler runs")
        self.assertEqual(w.close(), 0)

    def test_end_of_file_while_waiting_exits(self):
        w = self.worker()
        self.start(w, "one", name="programs")
        self.expect_call(w)
        self.assertEqual(w.close(), 0)

    def test_end_of_file_while_an_async_handler_waits_for_no_call(self):
        source = '''
import asyncio, sys

async def handler(event, context):
    await asyncio.sleep(0.3)
    print("finished", flush=True)
    if event:
        await context.invoke_async("programs")  # the daemon is gone: exits
        print("not reached", flush=True)
'''
        for event, printed in ((None, b"finished\n"), (True, b"finished\n")):
            with self.subTest(event=event):
                w = self.worker(source)
                w.send({"t": "invoke", "id": "r1", "deadline_ms": 0, "payload": event})
                time.sleep(0.1)
                self.assertEqual(w.close(), 0)
                w.drains[0].join(5)
                self.assertEqual(b"".join(w.logs), printed)
                w.dispose()

    def test_a_function_that_ships_its_own_hearth_keeps_it(self):
        source = '''
import hearth

def handler(event, context):
    try:
        context.invoke("programs")
    except context.InvokeError as exc:
        return [hearth.MINE, exc.code, type(exc).__module__]
'''
        w = self.worker(source, files=[("hearth.py", "MINE = 'the function\\'s own'\n")])
        w.send({"t": "invoke", "id": "r1", "deadline_ms": 0, "payload": None})
        call = self.expect_call(w)
        self.answer(w, call["id"], error={"code": "timeout", "message": "slow", "function": "programs",
                                          "version": 1, "request_id": "x", "retryable": False})
        self.assertEqual(self.result(w), ["the function's own", "timeout", "hearth"])
        self.assertEqual(w.close(), 0)


# A handler that raises hearth's error (or another) as event["do"] says.
RAISES = """
import asyncio
import hearth

class Coded(hearth.Error):
    pass

class NotHearths(Exception):
    code = "NOT_FOUND"  # a code attribute alone does not make an error code

class Unsettable(hearth.Error):
    def __init__(self, code):
        super().__init__("FINE", "set below")
        self.code = code

async def later(code, message):
    await asyncio.sleep(0)
    raise hearth.Error(code, message)

def handler(event, context):
    do = event["do"]
    if do == "raise":
        raise hearth.Error(event["code"], event.get("message"))
    if do == "context":
        raise context.Error(event["code"])
    if do == "subclass":
        raise Coded(event["code"], "from a subclass")
    if do == "not_hearths":
        raise NotHearths("a plain exception")
    if do == "unsettable":
        raise Unsettable(event["code"])
    if do == "async":
        return later(event["code"], "awaited")
    if do == "same":
        return [hearth.Error is context.Error, hearth.Error.__module__, sorted(hearth.__all__)]
    return "fine"
"""


class ErrorCodeTests(unittest.TestCase):
    """hearth.Error on a real worker: the code in the `error` frame
    (PROTOCOL.md, "Error codes"), and codes that are not valid."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="hearth-py-codes-")
        self.addCleanup(shutil.rmtree, self.root, True)

    def worker(self, source=RAISES, files=(), **load):
        code = os.path.join(self.root, "code")
        os.makedirs(code, exist_ok=True)
        with open(os.path.join(code, "main.py"), "w") as f:
            f.write(source)
        for name, text in files:
            with open(os.path.join(code, name), "w") as f:
                f.write(text)
        w = Worker()
        self.addCleanup(w.dispose)
        loaded = w.load(code, **load)
        self.assertEqual(loaded["t"], "loaded", loaded)
        return w

    def error(self, w, **event):
        reply = w.invoke(event)
        self.assertEqual((reply["t"], reply["id"]), ("error", "r1"), reply)
        return reply

    def test_the_raised_code_comes_in_the_error_frame(self):
        w = self.worker()
        reply = self.error(w, do="raise", code="NOT_FOUND", message="no program 42")
        self.assertEqual(list(reply), ["t", "id", "kind", "message", "traceback", "code"])
        self.assertEqual(
            (reply["kind"], reply["message"], reply["code"]), ("Error", "no program 42", "NOT_FOUND")
        )
        self.assertIn('main.py", line', reply["traceback"])
        self.assertIn("in handler", reply["traceback"])
        self.assertTrue(reply["traceback"].endswith("hearth.Error: no program 42\n"), reply["traceback"])
        # every character a code may have, at the longest length
        longest = "z" + "Az09_.-" * 9
        self.assertEqual(len(longest), 64)
        self.assertEqual(self.error(w, do="raise", code=longest)["code"], longest)
        self.assertEqual(w.invoke({"do": "nothing"})["value"], "fine")  # and it keeps serving
        self.assertEqual(w.close(), 0)

    def test_context_error_subclasses_and_async_handlers(self):
        w = self.worker()
        reply = self.error(w, do="context", code="GONE")
        self.assertEqual((reply["kind"], reply["message"], reply["code"]), ("Error", "", "GONE"))
        reply = self.error(w, do="subclass", code="NOT_FOUND")
        self.assertEqual((reply["kind"], reply["message"], reply["code"]), ("Coded", "from a subclass", "NOT_FOUND"))
        reply = self.error(w, do="async", code="LATE")
        self.assertEqual((reply["kind"], reply["message"], reply["code"]), ("Error", "awaited", "LATE"))
        self.assertIn("in later", reply["traceback"])
        self.assertEqual(w.invoke({"do": "same"})["value"], [True, "hearth", ["Error", "InvokeError"]])

    def test_an_invalid_code_is_sent_as_a_plain_error_saying_why(self):
        w = self.worker()
        for code, why in (
            ("not found", "it contains ' '"),
            ("9LIVES", "it does not start with a letter"),
            ("_X", "it does not start with a letter"),
            ("A" * 65, "it is 65 characters long"),
            ("caf\u00e9", "it contains '\u00e9'"),
        ):
            with self.subTest(code):
                reply = self.error(w, do="raise", code=code, message="no program 42")
                self.assertNotIn("code", reply)
                self.assertEqual(reply["kind"], "Error")
                self.assertTrue(reply["message"].startswith("invalid error code "), reply["message"])
                self.assertIn(why, reply["message"])
                self.assertIn("[A-Za-z][A-Za-z0-9_.-]*", reply["message"])
                self.assertTrue(reply["message"].endswith("; its message: no program 42"), reply["message"])
                self.assertIn("in handler", reply["traceback"])
        # the constructor refuses what is not a non-empty str...
        for code, kind in ((42, "TypeError"), ("", "ValueError"), (None, "TypeError")):
            with self.subTest(code):
                reply = self.error(w, do="raise", code=code)
                self.assertNotIn("code", reply)
                self.assertEqual(reply["kind"], kind)
                self.assertIn("hearth.Error: the error code", reply["message"])
        # ...and a code set afterwards is checked when it is sent
        reply = self.error(w, do="unsettable", code=404)
        self.assertNotIn("code", reply)
        self.assertEqual(reply["kind"], "Unsettable")
        self.assertIn("invalid error code 404 (it is a int, not a str)", reply["message"])
        self.assertTrue(reply["message"].endswith("; its message: set below"), reply["message"])

    def test_only_hearths_errors_send_a_code(self):
        w = self.worker()
        reply = self.error(w, do="not_hearths")
        self.assertNotIn("code", reply)
        self.assertEqual((reply["kind"], reply["message"]), ("NotHearths", "a plain exception"))

    def test_a_load_error_has_no_code(self):
        code = os.path.join(self.root, "code")
        os.makedirs(code)
        with open(os.path.join(code, "main.py"), "w") as f:
            f.write("import hearth\nraise hearth.Error('AT_IMPORT', 'too early')\n")
        w = Worker()
        self.addCleanup(w.dispose)
        reply = w.load(code)
        self.assertEqual((reply["t"], reply["kind"], reply["message"]), ("error", "Error", "too early"), reply)
        self.assertNotIn("code", reply)

    def test_the_client_sdks_error_is_known_too(self):
        # A function whose own packages hold the client SDK imports that
        # `hearth`, not the worker's: its Error sends the code all the same.
        sdk = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "sdk-python", "hearth")
        deps = os.path.join(self.root, "site")
        os.makedirs(deps)
        os.symlink(os.path.abspath(sdk), os.path.join(deps, "hearth"))
        source = (
            "import hearth\n\n"
            "def handler(event, context):\n"
            "    if event.get('do') == 'which':\n"
            "        return [hasattr(hearth, 'Client'), hearth.Error is context.Error]\n"
            "    raise hearth.Error('NOT_FOUND', 'no program 42')\n"
        )
        w = self.worker(source, env={"HEARTH_DEPS": deps})
        self.assertEqual(w.invoke({"do": "which"})["value"], [True, False])
        reply = self.error(w)
        self.assertEqual(
            (reply["kind"], reply["message"], reply["code"]), ("Error", "no program 42", "NOT_FOUND")
        )
        self.assertTrue(reply["traceback"].endswith("hearth.Error: no program 42\n"), reply["traceback"])

    def test_a_function_that_ships_its_own_hearth_keeps_it_and_has_context_error(self):
        source = (
            "import hearth\n\n"
            "def handler(event, context):\n"
            "    if event.get('do') == 'which':\n"
            "        return [hearth.MINE, hasattr(hearth, 'Error')]\n"
            "    raise context.Error('NOT_FOUND', 'no program 42')\n"
        )
        w = self.worker(source, files=[("hearth.py", "MINE = 'the function\\'s own'\n")])
        self.assertEqual(w.invoke({"do": "which"})["value"], ["the function's own", False])
        self.assertEqual(self.error(w)["code"], "NOT_FOUND")


EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "python")
PROGRAMS = [
    {"id": 1, "title": "Morning News", "genre": "news"},
    {"id": 2, "title": "Harbour Lights", "genre": "drama"},
    {"id": 3, "title": "Cup Final Live", "genre": "sport"},
    {"id": 4, "title": "Night Owls", "genre": "comedy"},
    {"id": 5, "title": "Deep Blue", "genre": "documentary"},
    {"id": 6, "title": "World Tonight", "genre": "news"},
    {"id": 7, "title": "The Long Road", "genre": "drama"},
]


class ExampleTests(unittest.TestCase):
    """examples/python/recommended-row and catalog-item on the real shim."""

    def worker(self, name):
        w = Worker()
        self.addCleanup(w.dispose)
        loaded = w.load(os.path.realpath(os.path.join(EXAMPLES, name)))
        self.assertEqual(loaded["t"], "loaded", loaded)
        return w

    def row(self, interests=None, interests_error=None, programs_error=None, retried=None):
        w = self.worker("recommended-row")
        w.send({"t": "invoke", "id": "r1", "deadline_ms": int(time.time() * 1000) + 10000, "payload": {"user": "u1"}})
        programs, wanted = w.recv(), w.recv()
        self.assertEqual((programs["function"], programs["payload"]), ("programs", {"limit": 20}))
        self.assertEqual((wanted["function"], wanted["payload"], wanted["timeout_ms"]), ("user-interests", {"user": "u1"}, 300))
        w.send({"t": "call_result", "id": wanted["id"], "ok": interests_error is None,
                "value": interests if interests_error is None else None, "error": interests_error})
        w.send({"t": "call_result", "id": programs["id"], "ok": programs_error is None,
                "value": PROGRAMS if programs_error is None else None, "error": programs_error})
        if retried is not None:
            again = w.recv()
            self.assertEqual((again["t"], again["function"]), ("call", "user-interests"), again)
            w.send({"t": "call_result", "id": again["id"], "ok": True, "value": retried, "error": None})
        reply = w.recv()
        self.assertEqual(reply["t"], "result", reply)
        return reply["value"]

    def test_the_users_genres_come_first(self):
        row = self.row({"user": "u1", "genres": ["news", "comedy"]})
        self.assertEqual((row["title"], row["personalised"], row["degraded"]), ("Picked for you", True, []))
        self.assertEqual([p["id"] for p in row["items"]], [1, 4, 6, 2, 3])
        self.assertEqual([p["matched"] for p in row["items"]], [True, True, True, False, False])
        self.assertEqual(row["items"][0], {"id": 1, "title": "Morning News", "genre": "news", "matched": True})

    def test_without_interests_the_row_is_not_personalised(self):
        error = {"code": "function_error", "message": "user-interests@2 raised KeyError: 'u1'",
                 "function": "user-interests", "version": 2, "request_id": "5f3a0c1200000008",
                 "retryable": False, "kind": "KeyError", "traceback": ""}
        row = self.row(interests_error=error)
        self.assertEqual((row["title"], row["personalised"]), ("Popular now", False))
        self.assertEqual(row["degraded"], ["user-interests: function_error (KeyError)"])
        self.assertEqual([p["id"] for p in row["items"]], [1, 2, 3, 4, 5])

    def test_a_refused_interests_call_is_tried_once_more(self):
        refused = {"code": "queue_full", "message": "full", "function": "user-interests", "version": None,
                   "request_id": None, "retryable": True}
        row = self.row(interests_error=refused, retried={"user": "u1", "genres": ["drama"]})
        self.assertEqual((row["personalised"], [p["id"] for p in row["items"]]), (True, [2, 7, 1, 3, 4]))

    def test_without_programs_the_row_is_empty(self):
        error = {"code": "timeout", "message": "programs took too long", "function": "programs", "version": 1,
                 "request_id": "x", "retryable": False}
        row = self.row({"user": "u1", "genres": ["news"]}, programs_error=error)
        self.assertEqual((row["items"], row["degraded"], row["personalised"]), ([], ["programs: timeout"], True))

    def test_catalog_item(self):
        w = self.worker("catalog-item")
        value = w.invoke({"id": 7})["value"]
        self.assertEqual((value["id"], value["title"], value["genre"]), (7, "The Long Road", "drama"))
        reply = w.invoke({"id": 99}, id="r2")
        # Its declared NOT_FOUND, raised with hearth.Error.
        self.assertEqual((reply["t"], reply.get("code")), ("error", "NOT_FOUND"), reply)
        self.assertIn("no program 99", reply["message"])
        self.assertEqual(w.close(), 0)


if __name__ == "__main__":
    unittest.main()
