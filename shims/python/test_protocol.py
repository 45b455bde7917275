"""The Python shim's tests: its side of the shared protocol vectors
(shims/protocol-vectors.json), and workers started the way the daemon starts
them (pipes on fds 3 and 4) for what `load` does before the import: the user
switch (`uid`, `gid`) and the temporary directory (`tmp`). The user switch
tests need root and are skipped, with the reason, otherwise.

    cd shims/python && python3 -m unittest -v test_protocol
"""

import fcntl
import json
import os
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

    def recv(self):
        return hearth_worker.read_frame(self.from_r)

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


if __name__ == "__main__":
    unittest.main()
