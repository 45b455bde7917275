"""hearth worker shim for Python.

Started by the hearth daemon, one process per worker. Speaks the protocol in
shims/PROTOCOL.md: length-prefixed MessagePack frames, reading fd 3 and writing
fd 4, so that the function's own stdout and stderr stay free for its logs.
"""

import importlib
import os
import struct
import sys
import time

import msgpack

# asyncio, inspect and traceback are imported when first needed: together
# they would add tens of milliseconds to every worker's start.

PROTOCOL = 1
MAX_FRAME = 64 * 1024 * 1024
IN_FD = 3
OUT_FD = 4
_HEADER = struct.Struct(">I")


class ChannelClosed(Exception):
    """The daemon closed the protocol pipe: time to exit."""


class ProtocolError(Exception):
    pass


class PrivilegeError(Exception):
    """The worker could not become the user `load` asked for (answered as PermissionError)."""


# What an operator can do when a worker may not switch users.
SWITCH_ADVICE = "run hearth serve as root, or start it with --worker-user set to its own user"
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2


def read_exact(fd, n):
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise ChannelClosed()
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def read_frame(fd):
    """Read one frame and return the decoded message (a dict)."""
    (length,) = _HEADER.unpack(read_exact(fd, 4))
    if length > MAX_FRAME:
        raise ProtocolError("frame of %d bytes is over the %d byte limit" % (length, MAX_FRAME))
    return decode_body(read_exact(fd, length))


def decode_body(body):
    message = msgpack.unpackb(body, raw=False, strict_map_key=False)
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ProtocolError("frame is not a map with a string `t`")
    return message


def encode_frame(message):
    body = msgpack.packb(message, use_bin_type=True)
    return _HEADER.pack(len(body)) + body


def write_frame(fd, message):
    data = memoryview(encode_frame(message))
    while data:
        written = os.write(fd, data)
        data = data[written:]


class Context:
    """What the handler gets as its second argument (Lambda-compatible names too)."""

    __slots__ = ("request_id", "function_name", "function_version", "memory_limit_in_mb", "deadline_ms")

    def __init__(self, request_id, function_name, function_version, memory_limit_in_mb, deadline_ms):
        self.request_id = request_id
        self.function_name = function_name
        self.function_version = function_version
        self.memory_limit_in_mb = memory_limit_in_mb
        self.deadline_ms = deadline_ms

    @property
    def aws_request_id(self):
        return self.request_id

    def get_remaining_time_in_millis(self):
        return max(0, int(self.deadline_ms - time.time() * 1000))

    def __repr__(self):
        return "Context(request_id=%r, function=%r, version=%r)" % (
            self.request_id,
            self.function_name,
            self.function_version,
        )


def _is_internal(filename):
    return filename == __file__ or filename.startswith("<frozen importlib") or filename == importlib.__file__


def user_traceback(exc):
    """The traceback without the shim's and importlib's frames, so it shows the user's code."""
    import traceback
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _is_internal(f.filename)]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines.extend(traceback.format_list(frames))
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)


def error_message(request_id, exc):
    return {
        "t": "error",
        "id": request_id,
        "kind": type(exc).__name__,
        "message": str(exc),
        "traceback": user_traceback(exc),
    }


def shim_error(request_id, kind, message):
    return {"t": "error", "id": request_id, "kind": kind, "message": message, "traceback": ""}


def identity(load):
    """The (uid, gid) that `load` asks the worker to run as, or None."""
    uid, gid = load.get("uid"), load.get("gid")
    if uid is None and gid is None:
        return None
    for name, value in (("uid", uid), ("gid", gid)):
        if type(value) is not int or not 0 <= value <= 0xFFFFFFFF:
            raise ProtocolError(
                "load has %s %r; the daemon sends uid and gid together, as unsigned 32-bit integers" % (name, value)
            )
    return uid, gid


_LIBC = None


def _load_libc():
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def preload_libc():
    """A worker started as root will switch users at `load`: import ctypes
    now, while it waits, rather than on the first call's path (~2 ms)."""
    global _LIBC
    if os.geteuid() == 0:
        try:
            _LIBC = _load_libc()
        except (ImportError, OSError):
            pass


def drop_privileges(uid, gid):
    """Become uid/gid for good, before any of the function's code runs: no
    supplementary groups, then the group, then the user; then check that
    root cannot be regained. Nothing to do when the worker already runs as
    them (a daemon that is not root, or one that switched at spawn).

    Changing the effective ids makes the kernel clear the parent-death signal
    the daemon set at spawn, so it is set again afterwards."""
    if os.getresuid() == (uid, uid, uid) and os.getresgid() == (gid, gid, gid):
        return
    was = "uid %d gid %d" % (os.geteuid(), os.getegid())
    try:
        ctypes, libc = _LIBC or _load_libc()
        death_signal = ctypes.c_int(0)
        if libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(death_signal)) != 0:
            death_signal.value = 0
    except (ImportError, OSError, AttributeError):  # no ctypes (a minimal build): nothing to restore
        libc = None
    parent = os.getppid()
    step = "setgroups([])"
    try:
        os.setgroups([])
        step = "setgid(%d)" % gid
        os.setgid(gid)
        step = "setuid(%d)" % uid
        os.setuid(uid)
    except OSError as exc:
        raise PrivilegeError(
            "cannot switch the worker from %s to uid %d gid %d: %s failed (%s); %s"
            % (was, uid, gid, step, exc.strerror or exc, SWITCH_ADVICE)
        ) from None
    problem = None
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        problem = "the worker runs as uids %s gids %s groups %s after the switch" % (
            os.getresuid(),
            os.getresgid(),
            os.getgroups(),
        )
    elif uid != 0:
        try:
            os.setuid(0)
            problem = "setuid(0) still succeeds after the switch"
        except OSError:
            pass
    if problem is not None:
        raise PrivilegeError(
            "switching to uid %d gid %d did not hold (%s), so the function is not run; the interpreter must "
            "not carry file capabilities (check with getcap) nor be started with ambient capabilities" % (uid, gid, problem)
        )
    stdlib = os.path.dirname(os.__file__)
    if not os.access(stdlib, os.R_OK | os.X_OK):
        raise PrivilegeError(
            "as uid %d gid %d the worker cannot read the Python standard library in %s, so no function can "
            "run; use an interpreter installed where that user can read it (not under /root; hearth serve "
            "--python), or give that user read access to it" % (uid, gid, stdlib)
        )
    if libc is not None and death_signal.value:
        libc.prctl(PR_SET_PDEATHSIG, death_signal.value)
        if os.getppid() != parent:  # the daemon died before the signal was set again
            os._exit(1)


def use_temp_dir(tmp):
    """Point tempfile (and the function's child processes) at `tmp`."""
    for name in ("TMPDIR", "TMP", "TEMP"):
        os.environ[name] = tmp
    tempfile = sys.modules.get("tempfile")
    if tempfile is not None:
        tempfile.tempdir = None  # forget a directory chosen before


def takes_one_argument(handler):
    """Lambda-style handlers take (event, context); plain ones may take just (event)."""
    code = getattr(handler, "__code__", None)
    if code is not None and not hasattr(handler, "__self__"):
        # A plain function: read its code object (cheap; no inspect import).
        if code.co_flags & 0x04:  # CO_VARARGS
            return False
        return code.co_argcount == 1
    import inspect

    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        return False
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 1


class Function:
    def __init__(self, load):
        self.dir = load["dir"]
        self.entry = load["entry"]
        self.name = load["function"]
        self.version = load["version"]
        self.memory_mb = load.get("memory_mb", 0)
        tmp = load.get("tmp")
        if tmp is not None and not isinstance(tmp, str):
            raise ProtocolError("load has tmp %r; it must be a string (a directory path)" % (tmp,))
        # A worker may be started before it knows its function (a generic
        # worker, started as root): first it becomes the function's user, so
        # that nothing below (the directory change, the import) runs as root...
        ids = identity(load)
        if ids is not None:
            drop_privileges(*ids)
        # ...then it takes the function's environment and temporary directory.
        os.environ.update({str(k): str(v) for k, v in (load.get("env") or {}).items()})
        if tmp:
            use_temp_dir(tmp)
        module_name, _, attr = self.entry.rpartition(".")
        if not module_name or not attr:
            raise ValueError("entry %r must look like module.handler" % self.entry)
        try:
            os.chdir(self.dir)
        except PermissionError as exc:
            raise PermissionError(
                "cannot enter the code directory %s as uid %d gid %d (%s); the daemon must make it and every "
                "directory above it searchable by that user or group" % (self.dir, os.geteuid(), os.getegid(), exc.strerror)
            ) from None
        sys.path.insert(0, self.dir)
        deps = os.environ.get("HEARTH_DEPS")  # this version's own installed packages
        if deps:
            sys.path.insert(1, deps)
        module = importlib.import_module(module_name)
        handler = getattr(module, attr, None)
        if handler is None:
            raise LookupError("module %s has no attribute %r" % (module_name, attr))
        if not callable(handler):
            raise LookupError("%s.%s is a %s, not a function" % (module_name, attr, type(handler).__name__))
        self.handler = handler
        self.one_arg = takes_one_argument(handler)
        self.loop = None

    def invoke(self, message):
        context = Context(message["id"], self.name, self.version, self.memory_mb, message.get("deadline_ms", 0))
        event = message.get("payload")
        result = self.handler(event) if self.one_arg else self.handler(event, context)
        if hasattr(result, "__await__"):
            if self.loop is None:
                import asyncio

                self.loop = asyncio.new_event_loop()
                asyncio.set_event_loop(self.loop)
                self.run = self.loop.run_until_complete
            result = self.run(result)
        return result


def flush_output():
    """Flush the function's stdout and stderr before answering, so the daemon
    finds all of a call's output in the pipes when the answer arrives."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def serve(in_fd=IN_FD, out_fd=OUT_FD):
    write_frame(
        out_fd,
        {
            "t": "ready",
            "protocol": PROTOCOL,
            "runtime": "python",
            "runtime_version": "%d.%d.%d" % sys.version_info[:3],
            "pid": os.getpid(),
        },
    )
    preload_libc()
    function = None
    refused = None  # why an earlier load could not switch users: this worker stays unusable
    while True:
        try:
            message = read_frame(in_fd)
        except ChannelClosed:
            return 0
        kind = message["t"]
        request_id = message.get("id", "")
        if kind == "invoke":
            if function is None:
                write_frame(out_fd, shim_error(request_id, "ProtocolError", "invoke before load"))
                continue
            try:
                value = function.invoke(message)
            except Exception as exc:  # the handler failed: report it and keep serving
                flush_output()
                write_frame(out_fd, error_message(request_id, exc))
                continue
            flush_output()
            try:
                frame = encode_frame({"t": "result", "id": request_id, "value": value})
            except (TypeError, ValueError, OverflowError) as exc:
                write_frame(
                    out_fd,
                    shim_error(
                        request_id,
                        "ResultNotSerializable",
                        "handler returned a value hearth cannot send (%s); return JSON-like data: "
                        "dict, list, str, int, float, bool, None or bytes" % exc,
                    ),
                )
                continue
            data = memoryview(frame)
            while data:
                data = data[os.write(out_fd, data):]
        elif kind == "load":
            if function is not None:
                write_frame(out_fd, shim_error(request_id, "ProtocolError", "code is already loaded"))
                continue
            if refused is not None:
                write_frame(out_fd, shim_error(request_id, "PermissionError", refused))
                continue
            started = time.perf_counter()
            try:
                function = Function(message)
            except PrivilegeError as exc:
                refused = "an earlier load could not switch users (%s); start a new worker" % exc
                write_frame(out_fd, shim_error(request_id, "PermissionError", str(exc)))
                continue
            except ProtocolError as exc:
                write_frame(out_fd, shim_error(request_id, "ProtocolError", str(exc)))
                continue
            except LookupError as exc:
                write_frame(out_fd, shim_error(request_id, "EntryNotFound", str(exc)))
                continue
            except BaseException as exc:  # import errors, SyntaxError, SystemExit at import time
                write_frame(out_fd, error_message(request_id, exc))
                continue
            write_frame(
                out_fd,
                {"t": "loaded", "id": request_id, "load_ms": (time.perf_counter() - started) * 1000.0},
            )
        elif kind == "ping":
            write_frame(out_fd, {"t": "pong", "id": request_id})
        elif kind in ("cancel", "shutdown", "call_result"):
            if kind == "shutdown":
                return 0
        else:
            write_frame(out_fd, shim_error(request_id, "ProtocolError", "unknown message type %r" % kind))


def main():
    for fd in (IN_FD, OUT_FD):
        try:
            os.fstat(fd)
        except OSError:
            sys.stderr.write("hearth worker: fd %d is not open; this program is started by the hearth daemon\n" % fd)
            return 70
    os.set_inheritable(IN_FD, False)
    os.set_inheritable(OUT_FD, False)
    return serve()


if __name__ == "__main__":
    sys.exit(main())
