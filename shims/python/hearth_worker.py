"""hearth worker shim for Python.

Started by the hearth daemon, one process per worker. Speaks the protocol in
shims/PROTOCOL.md: length-prefixed MessagePack frames, reading fd 3 and writing
fd 4, so that the function's own stdout and stderr stay free for its logs.
"""

import _thread
import collections
import importlib
import os
import struct
import sys
import time
import types

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


_PACKER = msgpack.Packer(use_bin_type=True)


def encode_frame(message):
    # One Packer for the worker's life (packb makes one per call); a value
    # it cannot pack may leave part of the message in it, so it is reset.
    try:
        body = _PACKER.pack(message)
    except BaseException:
        _PACKER.reset()
        raise
    return _HEADER.pack(len(body)) + body


def write_frame(fd, message):
    data = memoryview(encode_frame(message))
    while data:
        written = os.write(fd, data)
        data = data[written:]


def write_all(fd, data):
    data = memoryview(data)
    while data:
        data = data[os.write(fd, data):]


class Reader:
    """Frames from fd 3 through a buffer, so that one reader serves both the
    serve loop and a handler waiting for its calls, blocking (`next`) or
    from an event loop (`fill` once when fd 3 is readable, then `take`)."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()

    def take(self):
        """The next whole frame in the buffer, decoded, or None."""
        buf = self.buf
        if len(buf) < 4:
            return None
        (length,) = _HEADER.unpack_from(buf)
        if length > MAX_FRAME:
            raise ProtocolError("frame of %d bytes is over the %d byte limit" % (length, MAX_FRAME))
        end = 4 + length
        if len(buf) < end:
            return None
        view = memoryview(buf)  # decoded in place: no copy of the body
        body = view[4:end]
        try:
            message = decode_body(body)
        finally:
            body.release()
            view.release()
        del buf[:end]
        return message

    def fill(self):
        """One read (blocking unless fd 3 is readable); ChannelClosed at end of file."""
        want = 1 << 16
        if len(self.buf) >= 4:  # a large frame under way: read the rest in big pieces
            want = max(want, min(4 + _HEADER.unpack_from(self.buf)[0] - len(self.buf), 1 << 20))
        chunk = os.read(self.fd, want)
        if not chunk:
            raise ChannelClosed()
        self.buf += chunk

    def next(self):
        while True:
            message = self.take()
            if message is not None:
                return message
            self.fill()


# ---------------------------------------------------------------- nested calls
# PROTOCOL.md, "Nested calls": the handler's `context.invoke*` write `call`
# frames on fd 4 and wait for their `call_result`s on fd 3, reading (and
# dispatching) whatever else comes meanwhile.

_INVOKE_OPTIONS = ("version", "alias", "timeout_ms")
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


class InvokeError(Exception):
    """A nested call failed: raised by `context.invoke`, returned in place of
    the value by `context.invoke_many`.

    `code` is hearth's error code (function_error, timeout, recursion, ...),
    `message` says what happened, `function` is the callee, `version` the
    version that ran (or None), `request_id` the nested call's own request id
    (or None), `retryable` is True when the call was refused before it ran
    (the function's code may try again; hearth never does). With code
    function_error, `error` is the callee's own exception as a dict
    {"type", "message", "traceback"}; otherwise None."""

    def __init__(self, code, message, function=None, version=None, request_id=None, retryable=False, error=None):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.function = function
        self.version = version
        self.request_id = request_id
        self.retryable = retryable
        self.error = error

    @classmethod
    def from_call_result(cls, function, error):
        if not isinstance(error, dict):
            return cls("internal", "the daemon answered the call to %s without an error" % function, function)
        code = str(error.get("code") or "internal")
        message = str(error.get("message") or code)
        callee = None
        if code == "function_error":
            callee = {
                "type": str(error.get("kind") or "Error"),
                "message": message,
                "traceback": str(error.get("traceback") or ""),
            }
        return cls(
            code,
            message,
            error.get("function") or function,
            error.get("version"),
            error.get("request_id"),
            error.get("retryable") is True,
            callee,
        )

    def __str__(self):
        return "call to %s failed (%s): %s" % (self.function, self.code, self.message)

    def __repr__(self):
        return "InvokeError(code=%r, function=%r, version=%r, request_id=%r, retryable=%r)" % (
            self.code,
            self.function,
            self.version,
            self.request_id,
            self.retryable,
        )


InvokeError.__module__ = "hearth"


class Error(Exception):
    """An error the function raises with one of its own error codes (declared
    in its hearth.toml as [errors.CODE]): `raise hearth.Error("NOT_FOUND",
    "no program 42")`. `code` must be a non-empty str; `message` (optional)
    says what happened. The worker sends the code in its `error` frame
    (PROTOCOL.md, "Error codes"). The client SDK's `hearth.Error` is the same
    class; the worker knows either by their `__hearth_error__` marker."""

    __hearth_error__ = True

    def __init__(self, code, message=None):
        if not isinstance(code, str):
            raise TypeError(
                "hearth.Error: the error code must be a str naming one of the function's error codes "
                "([errors.CODE] in hearth.toml), not %s" % type(code).__name__
            )
        if not code:
            raise ValueError(
                "hearth.Error: the error code is empty; name one of the function's error codes "
                "([errors.CODE] in hearth.toml)"
            )
        if message is not None and not isinstance(message, str):
            message = str(message)
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self):
        return self.code if self.message is None else self.message

    def __repr__(self):
        return "Error(%r, %r)" % (self.code, self.message)


Error.__module__ = "hearth"

# What an error code may be (PROTOCOL.md, "Error codes").
MAX_CODE = 64
_CODE_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_CODE_REST = _CODE_FIRST | frozenset("0123456789_.-")
CODE_RULE = "an error code is 1 to %d characters matching [A-Za-z][A-Za-z0-9_.-]*" % MAX_CODE


def code_problem(code):
    """Why `code` cannot be sent as an error code, or None when it can."""
    if not isinstance(code, str):
        return "it is a %s, not a str" % type(code).__name__
    if not code:
        return "it is empty"
    if len(code) > MAX_CODE:
        return "it is %d characters long" % len(code)
    if code[0] not in _CODE_FIRST:
        return "it does not start with a letter"
    bad = sorted(set(code) - _CODE_REST)
    if bad:
        return "it contains %s" % ", ".join(repr(c) for c in bad)
    return None


def _check_uint(what, value, top):
    if type(value) is not int:  # bool is an int: refused too
        raise TypeError("%s must be an int, not %s" % (what, type(value).__name__))
    if not 1 <= value <= top:
        raise ValueError("%s must be a positive integer (at most %d), not %d" % (what, top, value))


def call_frame(name, event=None, version=None, alias=None, timeout_ms=None):
    """Check one call's arguments; the `call` message without its id and parent."""
    if not isinstance(name, str):
        raise TypeError("the function to call must be named by a str, not %s" % type(name).__name__)
    if not name:
        raise ValueError("the function to call must be named (got an empty string)")
    message = {"t": "call", "id": None, "parent": None, "function": name, "payload": event}
    if version is not None and alias is not None:
        raise ValueError("call to %s: give a version or an alias, not both" % name)
    if version is not None:
        _check_uint("call to %s: version" % name, version, _U32)
        message["version"] = version
    if alias is not None:
        if not isinstance(alias, str):
            raise TypeError("call to %s: alias must be a str, not %s" % (name, type(alias).__name__))
        if not alias:
            raise ValueError("call to %s: alias must not be empty" % name)
        message["alias"] = alias
    if timeout_ms is not None:
        _check_uint("call to %s: timeout_ms" % name, timeout_ms, _U64)
        message["timeout_ms"] = timeout_ms
    return message


def many_frames(calls):
    """Check every call of an invoke_many before any is sent."""
    if isinstance(calls, (str, bytes, dict)) or not hasattr(calls, "__iter__"):
        raise TypeError("invoke_many takes a list of (name, event) or (name, event, options) tuples, not %s" % type(calls).__name__)
    frames = []
    for index, call in enumerate(calls):
        if not isinstance(call, (tuple, list)) or len(call) not in (2, 3):
            raise TypeError(
                "invoke_many: call %d must be a (name, event) or (name, event, options) tuple, not %r" % (index, call)
            )
        options = call[2] if len(call) == 3 else None
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise TypeError("invoke_many: the options of call %d must be a dict, not %s" % (index, type(options).__name__))
        unknown = sorted(str(k) for k in options if k not in _INVOKE_OPTIONS)
        if unknown:
            raise TypeError(
                "invoke_many: call %d has unknown option(s) %s; the options are version, alias and timeout_ms"
                % (index, ", ".join(unknown))
            )
        frames.append(call_frame(call[0], call[1], **options))
    return frames


class Answer:
    """One call in flight: its `call_result` once it has come."""

    __slots__ = ("id", "function", "message", "future")

    def __init__(self, call_id, function, future=None):
        self.id = call_id
        self.function = function
        self.message = None
        self.future = future

    def value_or_error(self):
        message = self.message
        if message.get("ok") is True:
            return message.get("value")
        return InvokeError.from_call_result(self.function, message.get("error"))

    def value_or_raise(self):
        message = self.message
        if message.get("ok") is True:
            return message.get("value")
        raise InvokeError.from_call_result(self.function, message.get("error"))


class Channel:
    """The worker's side of fds 3 and 4 while it serves: the frame reader,
    the calls in flight, and the frames kept for later (the next invokes)."""

    def __init__(self, in_fd, out_fd):
        self.reader = Reader(in_fd)
        self.out_fd = out_fd
        self.backlog = collections.deque()  # frames read while a handler ran, for the serve loop
        self.pending = {}  # call id -> Answer
        self.calls = 0
        self.current = None  # the id of the invoke running, if any
        self.thread = _thread.get_ident()
        self.watched = None  # the event loop fd 3 is registered with
        self.closed = False  # end of file seen from an event loop

    def next(self):
        """The serve loop's next message: one kept for later first."""
        if self.backlog:
            return self.backlog.popleft()
        return self.reader.next()

    def begin(self, request_id):
        self.current = request_id

    def end(self):
        """The invoke is over: its calls still in flight are forgotten (their
        call_results, if any, are ignored) and fd 3 leaves the event loop."""
        self.current = None
        for answer in self.pending.values():
            if answer.future is not None and not answer.future.done():
                answer.future.cancel()
        self.pending.clear()
        self.unwatch()

    # -- sending

    def start(self, frames, loop=None):
        """Number, encode and send the calls (all or none), and return their Answers."""
        if self.closed:
            self.gone()
        answers, data = [], []
        for message in frames:
            self.calls += 1
            call_id = "c%d" % self.calls
            message["id"] = call_id
            message["parent"] = self.current
            try:
                frame = encode_frame(message)
            except (TypeError, ValueError, OverflowError) as exc:
                raise TypeError(
                    "the event for %s cannot be sent (%s); pass JSON-like data: dict, list, str, int, float, "
                    "bool, None or bytes" % (message["function"], exc)
                ) from None
            if len(frame) - 4 > MAX_FRAME:
                raise ValueError(
                    "the event for %s is %d bytes, over the %d byte frame limit" % (message["function"], len(frame) - 4, MAX_FRAME)
                )
            data.append(frame)
            answers.append(Answer(call_id, message["function"], loop.create_future() if loop is not None else None))
        for answer in answers:
            self.pending[answer.id] = answer
        write_all(self.out_fd, b"".join(data))
        return answers

    def run(self, frames):
        """Send the calls and read fd 3 until every one is answered."""
        answers = self.start(frames)
        try:
            for answer in answers:
                while answer.message is None:
                    self.dispatch_buffered()
                    if answer.message is None:
                        self.fill()
            self.dispatch_buffered()  # answer a ping that came with the last result
        finally:
            for answer in answers:
                self.pending.pop(answer.id, None)
        return answers

    async def run_async(self, frames):
        """Send the calls and wait for their answers without blocking the event loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        self.watch(loop)
        answers = self.start(frames, loop)
        try:
            for answer in answers:
                await answer.future
        finally:
            for answer in answers:
                self.pending.pop(answer.id, None)
        return answers

    # -- receiving

    def fill(self):
        try:
            self.reader.fill()
        except ChannelClosed:
            self.gone()

    def gone(self):
        """End of file while calls wait: the daemon is gone, nobody will answer them."""
        flush_output()
        os._exit(0)

    def dispatch_buffered(self):
        while True:
            try:
                message = self.reader.take()
            except Exception as exc:  # an oversized or undecodable frame: the channel is broken
                sys.stderr.write("hearth worker: broken channel while waiting for a call: %s\n" % exc)
                flush_output()
                os._exit(1)
            if message is None:
                return
            self.dispatch(message)

    def dispatch(self, message):
        """A frame read while a handler runs."""
        kind = message["t"]
        if kind == "call_result":
            answer = self.pending.pop(message.get("id"), None)
            if answer is None:
                return  # not a call of ours in flight (one whose invoke has ended): ignored
            answer.message = message
            if answer.future is not None and not answer.future.done():
                answer.future.set_result(None)
        elif kind == "ping":
            write_frame(self.out_fd, {"t": "pong", "id": message.get("id", "")})
        elif kind == "cancel":
            pass
        else:  # the next invoke (pipelined), or anything the serve loop answers: later, in order
            self.backlog.append(message)

    def on_readable(self):
        try:
            self.reader.fill()
        except ChannelClosed:
            if self.pending:
                self.gone()
            # No call waits: let the handler finish (the serve loop then sees
            # the end of file too), but a call it makes now exits.
            self.closed = True
            self.unwatch()
        self.dispatch_buffered()

    def watch(self, loop):
        """Read fd 3 from `loop` while an async handler runs."""
        if self.watched is loop:
            return
        self.unwatch()
        loop.add_reader(self.reader.fd, self.on_readable)
        self.watched = loop
        if self.reader.buf:  # frames read before: they would not make fd 3 readable again
            loop.call_soon(self.dispatch_buffered)

    def unwatch(self):
        loop, self.watched = self.watched, None
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.reader.fd)


def install_hearth_module(paths):
    """Make `import hearth` give the function Error and InvokeError, unless
    its code or its own packages ship a module of that name (theirs wins,
    then: the client SDK's `hearth` has an Error the worker knows too)."""
    if "hearth" in sys.modules:
        return
    for path in paths:
        for name in ("hearth", "hearth.py"):
            if os.path.exists(os.path.join(path, name)):
                return
    module = types.ModuleType("hearth", "What the hearth runtime gives a Python function: Error and InvokeError.")
    module.Error = Error
    module.InvokeError = InvokeError
    module.__all__ = ["Error", "InvokeError"]
    sys.modules["hearth"] = module


class Context:
    """What the handler gets as its second argument (Lambda-compatible names
    too), and its way to call other functions."""

    __slots__ = ("request_id", "function_name", "function_version", "memory_limit_in_mb", "deadline_ms", "_channel")

    InvokeError = InvokeError  # also hearth.InvokeError; this one works even when the function ships its own `hearth`
    Error = Error  # also hearth.Error, likewise

    def __init__(self, request_id, function_name, function_version, memory_limit_in_mb, deadline_ms, channel=None):
        self.request_id = request_id
        self.function_name = function_name
        self.function_version = function_version
        self.memory_limit_in_mb = memory_limit_in_mb
        self.deadline_ms = deadline_ms
        self._channel = channel

    def _calls(self):
        channel = self._channel
        if channel is None or channel.current != self.request_id:
            raise RuntimeError(
                "invoke %s has already been answered: call other functions while its handler runs" % self.request_id
            )
        if _thread.get_ident() != channel.thread:
            raise RuntimeError(
                "context.invoke is called from another thread; call it from the handler's own thread "
                "(for several calls at once use context.invoke_many, or invoke_async in an async handler)"
            )
        return channel

    def invoke(self, name, event=None, *, version=None, alias=None, timeout_ms=None):
        """Call function `name` with `event` and return its value; raise
        InvokeError when it fails. The handler waits for the answer."""
        call = call_frame(name, event, version, alias, timeout_ms)
        return self._calls().run([call])[0].value_or_raise()

    def invoke_many(self, calls):
        """Make several calls at once: `calls` is a list of (name, event) or
        (name, event, options) tuples. Returns their values in the same order,
        an InvokeError instance (not raised) in place of each failed one."""
        frames = many_frames(calls)
        channel = self._calls()
        if not frames:
            return []
        return [answer.value_or_error() for answer in channel.run(frames)]

    async def invoke_async(self, name, event=None, *, version=None, alias=None, timeout_ms=None):
        """`invoke` for async handlers: other awaits go on while it waits."""
        call = call_frame(name, event, version, alias, timeout_ms)
        (answer,) = await self._calls().run_async([call])
        return answer.value_or_raise()

    async def invoke_many_async(self, calls):
        """`invoke_many` for async handlers."""
        frames = many_frames(calls)
        channel = self._calls()
        if not frames:
            return []
        return [answer.value_or_error() for answer in await channel.run_async(frames)]

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


def error_message(request_id, exc, codes=False):
    """The `error` frame for `exc`. With `codes` (an invoke's answer), an
    exception marked `__hearth_error__` (hearth.Error, the SDK's too) sends
    its `code`, and its own `message` ("" when it has none); one whose code
    is not valid is sent without a code, its message saying why."""
    frame = {
        "t": "error",
        "id": request_id,
        "kind": type(exc).__name__,
        "message": None,
        "traceback": user_traceback(exc),
    }
    marked = False
    if codes:
        try:
            marked = getattr(exc, "__hearth_error__", False) is True
            if marked:
                code = getattr(exc, "code", None)
                text = getattr(exc, "message", None)
                text = "" if text is None else str(text)
        except Exception:  # a property of the function's own class failed: a plain error
            marked = False
    if marked:
        problem = code_problem(code)
        if problem is None:
            frame["message"] = text
            frame["code"] = code
        else:
            frame["message"] = invalid_code_message(_shown(code), problem, text)
    if frame["message"] is None:
        frame["message"] = str(exc)
    return frame


def invalid_code_message(shown, problem, text):
    """The message of an error sent without its code, because the code is not valid."""
    return "invalid error code %s (%s): %s, so this error is sent without one; raise a code declared in " \
        "hearth.toml as [errors.CODE]%s" % (shown, problem, CODE_RULE, ("; its message: " + text) if text else "")


def _shown(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


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
        install_hearth_module([self.dir, deps] if deps else [self.dir])
        module = importlib.import_module(module_name)
        handler = getattr(module, attr, None)
        if handler is None:
            raise LookupError("module %s has no attribute %r" % (module_name, attr))
        if not callable(handler):
            raise LookupError("%s.%s is a %s, not a function" % (module_name, attr, type(handler).__name__))
        self.handler = handler
        self.one_arg = takes_one_argument(handler)
        self.loop = None

    def invoke(self, message, channel=None):
        event = message.get("payload")
        if self.one_arg:  # no context to make
            result = self.handler(event)
        else:
            context = Context(message["id"], self.name, self.version, self.memory_mb, message.get("deadline_ms", 0), channel)
            result = self.handler(event, context)
        if hasattr(result, "__await__"):
            if self.loop is None:
                import asyncio

                self.loop = asyncio.new_event_loop()
                asyncio.set_event_loop(self.loop)
                self.run = self.loop.run_until_complete
            if channel is not None:
                # fd 3 is read from the loop while the handler runs: call_results,
                # pings and the next invokes are dispatched between its awaits
                channel.watch(self.loop)
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
    channel = Channel(in_fd, out_fd)
    function = None
    refused = None  # why an earlier load could not switch users: this worker stays unusable
    while True:
        try:
            message = channel.next()  # frames kept while a handler ran come first, in order
        except ChannelClosed:
            return 0
        kind = message["t"]
        request_id = message.get("id", "")
        if kind == "invoke":
            if function is None:
                write_frame(out_fd, shim_error(request_id, "ProtocolError", "invoke before load"))
                continue
            channel.begin(request_id)
            try:
                value = function.invoke(message, channel)
            except Exception as exc:  # the handler failed: report it and keep serving
                channel.end()
                flush_output()
                write_frame(out_fd, error_message(request_id, exc, codes=True))
                continue
            channel.end()
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
            written = os.write(out_fd, frame)
            if written < len(frame):  # a large answer: the pipe takes it in pieces
                write_all(out_fd, memoryview(frame)[written:])
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
