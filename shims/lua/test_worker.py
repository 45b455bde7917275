"""End-to-end tests of the Lua worker shim: start `lua5.4 hearth_worker.lua`
the way the daemon does (fd 3 = daemon -> worker pipe, fd 4 = worker -> daemon
pipe, stdin /dev/null, stdout and stderr drained) and talk PROTOCOL.md to it.

Run from anywhere: python3 shims/lua/test_worker.py   (needs `msgpack`)
Figures (start-up, round trips):   python3 shims/lua/test_worker.py --bench
Environment: HEARTH_LUA (default lua5.4).
"""

import fcntl
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.path.join(HERE, "hearth_worker.lua")
LUA = os.environ.get("HEARTH_LUA", "lua5.4")
MAX_FRAME = 64 * 1024 * 1024


def now_ms():
    return int(time.time() * 1000)


class Worker:
    """One worker process with its protocol pipes and drained logs."""

    def __init__(self, env=None):
        to_r, to_w = os.pipe()  # daemon -> worker (fd 3)
        from_r, from_w = os.pipe()  # worker -> daemon (fd 4)
        # Park the child's ends above 3/4 so the dup2s cannot clobber each other.
        child_in = fcntl.fcntl(to_r, fcntl.F_DUPFD_CLOEXEC, 100)
        child_out = fcntl.fcntl(from_w, fcntl.F_DUPFD_CLOEXEC, 100)
        for fd in (to_r, from_w):
            os.close(fd)

        def preexec():
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)
            os.setpgid(0, 0)

        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [LUA, SHIM],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(3, 4),
            preexec_fn=preexec,
            env=env or {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HEARTH_PROTOCOL": "1"},
            cwd="/",
        )
        os.close(child_in)
        os.close(child_out)
        for fd in (to_w, from_r):
            os.set_inheritable(fd, False)
        self.to_w, self.from_r = to_w, from_r
        self.stdout, self.stderr = [], []
        self.drains = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for t in self.drains:
            t.start()

    @staticmethod
    def _drain(stream, sink):
        while True:
            chunk = stream.read1(1 << 16)
            if not chunk:
                return
            sink.append(chunk)

    def send(self, message):
        body = msgpack.packb(message, use_bin_type=True)
        data = memoryview(struct.pack(">I", len(body)) + body)
        while data:
            data = data[os.write(self.to_w, data):]

    def send_raw(self, data):
        os.write(self.to_w, data)

    def _read_exact(self, n):
        chunks = []
        while n:
            chunk = os.read(self.from_r, min(n, 1 << 20))
            if not chunk:
                raise EOFError("worker closed fd 4")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def recv(self):
        (length,) = struct.unpack(">I", self._read_exact(4))
        assert length <= MAX_FRAME, length
        return msgpack.unpackb(self._read_exact(length), raw=False, strict_map_key=False)

    def recv_raw(self):
        head = self._read_exact(4)
        (length,) = struct.unpack(">I", head)
        return head + self._read_exact(length)

    def load(self, dir, entry="main.handler", **extra):
        message = {
            "t": "load",
            "id": "load",
            "dir": dir,
            "entry": entry,
            "function": "fn",
            "version": 3,
            "timeout_ms": 3000,
            "memory_mb": 128,
        }
        message.update(extra)
        self.send(message)
        return self.recv()

    def invoke(self, payload, id="r1", deadline_ms=None):
        self.send({"t": "invoke", "id": id, "deadline_ms": deadline_ms or now_ms() + 3000, "payload": payload})
        return self.recv()

    def close(self, timeout=10):
        """Close fd 3 (end of file) and return the exit status."""
        if self.to_w is not None:
            os.close(self.to_w)
            self.to_w = None
        try:
            return self.proc.wait(timeout)
        finally:
            os.close(self.from_r)
            for t in self.drains:
                t.join(5)

    def logs(self):
        return b"".join(self.stdout), b"".join(self.stderr)


def started_and_ready():
    w = Worker()
    ready = w.recv()
    assert ready["t"] == "ready", ready
    return w, ready


# -- function fixtures ----------------------------------------------------------

FUNCTIONS = {
    "hello": {
        "main.lua": """
local M = {}
function M.handler(event, context)
  return {
    greeting = "Hello, " .. (event.name or "world") .. "!",
    request_id = context.request_id,
    function_name = context.function_name,
    function_version = context.function_version,
    memory = context.memory_limit_in_mb,
    deadline_ms = context.deadline_ms,
    remaining = context.get_remaining_time_in_millis(),
    remaining_colon = context:get_remaining_time_in_millis(),
    dir = context.dir,
    path = context.path("data.json"),
    path_colon = context:path("x/y.txt"),
    empty_array = context.array(),
    empty_map = {},
    with_null = { 1, context.null, 3 },
    same_hearth = require("hearth") == context.hearth,
  }
end
return M
""",
    },
    "one_arg": {"main.lua": "return { handler = function(event) return event end }\n"},
    "raiser": {
        "main.lua": """local M = {}

local function check(event)
  if event.fail == "string" then
    error("bad input: " .. event.why)
  elseif event.fail == "table" then
    error({ kind = "ValidationError", message = "no " .. event.why })
  elseif event.fail == "plain_table" then
    error({ code = 7 })
  elseif event.fail == "unserializable" then
    return function() end
  elseif event.fail == "recursive" then
    local t = {}
    t.self = t
    return t
  end
  return "fine"
end

function M.handler(event)
  local result = check(event)
  return result
end

return M
""",
    },
    "chatty": {
        "main.lua": """return { handler = function(event)
  for i = 1, event.lines do
    print(("line %d of the log, with some padding to make it longer: %s"):format(i, string.rep("x", 60)))
    io.stderr:write("err ", i, "\\n")
  end
  io.write("no newline at the end")
  return { lines = event.lines, ok = true }
end }
""",
    },
    "files": {
        "main.lua": """local here = debug.getinfo(1, "S").source:match("^@(.*)/")
local util = require("lib.util")
return { handler = function(event, context)
  local f = assert(io.open(context.path("data.json"), "rb"))
  local text = f:read("a")
  f:close()
  local g = assert(io.open(here .. "/data.json", "rb"))
  local same = g:read("a") == text
  g:close()
  return { text = text, same = same, shout = util.shout("hi") }
end }
""",
        "data.json": '{"answer": 42}\n',
        "lib/util.lua": "return { shout = function(s) return s:upper() .. '!' end }\n",
    },
    "syntax": {"main.lua": "local M = {}\nfunction M.handler(event)\n  return event +\nend\nreturn M\n"},
    "no_handler": {"main.lua": "return { other = function() end }\n"},
    "not_callable": {"main.lua": "return { handler = 'a string' }\n"},
    "returns_nothing": {"main.lua": "function handler() end\n"},
    "boom_at_load": {"main.lua": "local x = 1\nerror('boom at load')\n"},
    "missing_dep": {"main.lua": "local dep = require('no_such_module_here')\nreturn { handler = print }\n"},
    "dotted": {
        "api/users.lua": "return { get = function(event) return 'users.get ' .. event.id end }\n",
        "pkg/init.lua": "return { handler = function() return 'pkg/init.lua' end }\n",
    },
    "echo": {"main.lua": "return { handler = function(event) return event end }\n"},
    "whoami": {
        "main.lua": """local M = {}
function M.handler()
  local f = assert(io.open("/proc/self/status", "rb"))
  local status = f:read("a")
  f:close()
  return { uid = tonumber(status:match("\\nUid:%s*(%d+)")), tmpdir = os.getenv("TMPDIR") or "" }
end
return M
""",
    },
    "nested": {
        "main.lua": """local hearth = require("hearth")
local M = {}

local function describe(err)
  if err == nil then return nil end
  return {
    code = err.code, message = err.message, ["function"] = err["function"], version = err.version,
    request_id = err.request_id, retryable = err.retryable, error = err.error,
    text = tostring(err), meta = getmetatable(err).__name,
  }
end

local BAD = {
  { "" },
  { 42 },
  { "f", 1, { version = 1, alias = "a" } },
  { "f", 1, { version = 0 } },
  { "f", 1, { version = 1.5 } },
  { "f", 1, { alias = "" } },
  { "f", 1, { timeout_ms = 0 } },
  { "f", 1, { timeout_ms = "100" } },
  { "f", 1, { timeoutMs = 100 } },
  { "f", 1, "fast" },
  { "f", { fn = print } },
}

function M.handler(event, context)
  if event.mode == "one" then
    local value, err = context.invoke(event.name, event.event, event.opts)
    return { value = value, err = describe(err), tag = event.tag }
  elseif event.mode == "colon" then
    local value = context:invoke(event.name, event.event)
    return { value = value }
  elseif event.mode == "rethrow" then
    local _, err = context.invoke(event.name, nil)
    error(err)
  elseif event.mode == "many" then
    local list = {}
    for i, item in ipairs(event.list) do
      if item.name then list[i] = item else list[i] = { item[1], item[2], item[3] } end
    end
    local values, errs = context.invoke_many(list)
    local out = context.array()
    for i = 1, #list do out[i] = { value = values[i], err = describe(errs[i]) } end
    return out
  elseif event.mode == "bad" then
    local out = context.array()
    for i, args in ipairs(BAD) do
      local ok, err = pcall(context.invoke, args[1], args[2], args[3])
      out[i] = ok and "no error" or err
    end
    for _, list in ipairs({ "f", { "g" }, { { "f" }, { "" } }, { { name = "f", timeout_ms = -1 } } }) do
      local ok, err = pcall(context.invoke_many, list)
      out[#out + 1] = ok and "no error" or err
    end
    return out
  elseif event.mode == "keep" then
    M.kept = context
    return "kept"
  elseif event.mode == "stale" then
    local ok, err = pcall(M.kept.invoke, "x", nil)
    return { ok = ok, err = err }
  end
  return { plain = event.n }
end

return M
""",
    },
}


FUNCTIONS["coded"] = {
    "main.lua": """local M = {}

local function find(event)
  error({ code = event.code, message = event.message, kind = event.kind })
end

function M.handler(event, context)
  if event.ok then return "fine" end
  find(event)
end

return M
""",
}


def make_functions(root):
    dirs = {}
    for name, files in FUNCTIONS.items():
        d = os.path.join(root, name, "v1-0123456789ab")
        for rel, text in files.items():
            path = os.path.join(d, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        dirs[name] = d
    return dirs


# -- tests -------------------------------------------------------------------------


def test_ready_first(dirs):
    w, ready = started_and_ready()
    assert list(ready) == ["t", "protocol", "runtime", "runtime_version", "pid"], list(ready)
    assert ready["protocol"] == 1 and ready["runtime"] == "lua", ready
    assert ready["runtime_version"] == "5.4", ready
    assert ready["pid"] == w.proc.pid, (ready, w.proc.pid)
    assert w.close() == 0


def test_two_parameter_handler_and_context(dirs):
    w, _ = started_and_ready()
    loaded = w.load(dirs["hello"])
    assert list(loaded) == ["t", "id", "load_ms"] and loaded["t"] == "loaded", loaded
    assert loaded["id"] == "load" and isinstance(loaded["load_ms"], float) and loaded["load_ms"] >= 0, loaded
    deadline = now_ms() + 3000
    r = w.invoke({"name": "Ada"}, id="req-1", deadline_ms=deadline)
    assert r["t"] == "result" and r["id"] == "req-1", r
    v = r["value"]
    assert v["greeting"] == "Hello, Ada!", v
    assert v["request_id"] == "req-1" and v["function_name"] == "fn" and v["function_version"] == 3, v
    assert v["memory"] == 128 and v["deadline_ms"] == deadline, v
    assert 2900 <= v["remaining"] <= 3000, v
    assert 2900 <= v["remaining_colon"] <= 3000, v
    assert v["dir"] == dirs["hello"] and v["path"] == dirs["hello"] + "/data.json", v
    assert v["path_colon"] == dirs["hello"] + "/x/y.txt", v
    assert v["empty_array"] == [] and v["empty_map"] == {}, v
    assert v["with_null"] == [1, None, 3] and v["same_hearth"] is True, v
    # A deadline already past: remaining is 0, never negative.
    r = w.invoke({}, id="req-2", deadline_ms=now_ms() - 5000)
    assert r["value"]["remaining"] == 0, r
    # A deadline computed 300 ms before the invoke was sent (a queued call):
    # the estimate may be too high, but never above timeout_ms, and by at
    # most the os.time() bound (1 s).
    deadline = now_ms() + 2700
    r = w.invoke({}, id="req-3", deadline_ms=deadline)
    assert 2600 <= r["value"]["remaining"] <= 3000, r
    assert w.close() == 0


def test_one_parameter_handler(dirs):
    w, _ = started_and_ready()
    assert w.load(dirs["one_arg"])["t"] == "loaded"
    assert w.invoke({"a": [1, 2]})["value"] == {"a": [1, 2]}
    assert w.close() == 0


def test_handler_errors_and_keeps_serving(dirs):
    w, _ = started_and_ready()
    assert w.load(dirs["raiser"])["t"] == "loaded"
    e = w.invoke({"fail": "string", "why": "nope"}, id="e1")
    assert list(e) == ["t", "id", "kind", "message", "traceback"], e
    assert e["t"] == "error" and e["id"] == "e1" and e["kind"] == "Error", e
    assert e["message"].endswith("main.lua:5: bad input: nope"), e
    tb = e["traceback"]
    assert tb.startswith(e["message"] + "\nstack traceback:\n"), tb
    assert "main.lua:5: in " in tb and "main.lua:21: in " in tb, tb
    assert "tail calls" not in tb, tb
    assert "hearth_worker" not in tb and "xpcall" not in tb, tb
    assert w.invoke({}, id="ok1") == {"t": "result", "id": "ok1", "value": "fine"}

    e = w.invoke({"fail": "table", "why": "email"}, id="e2")
    assert (e["kind"], e["message"]) == ("ValidationError", "no email"), e
    assert "main.lua:7: in " in e["traceback"], e

    e = w.invoke({"fail": "plain_table"}, id="e3")
    assert e["kind"] == "Error" and e["message"].startswith("table: "), e

    e = w.invoke({"fail": "unserializable"}, id="e4")
    assert e["kind"] == "ResultNotSerializable" and e["traceback"] == "", e
    assert "a function at value" in e["message"], e
    e = w.invoke({"fail": "recursive"}, id="e5")
    assert e["kind"] == "ResultNotSerializable" and "contains itself at value.self" in e["message"], e
    assert w.invoke({}, id="ok2")["value"] == "fine"
    assert w.close() == 0


def test_a_table_with_a_code_sends_it_in_the_error_frame(dirs):
    w, _ = started_and_ready()
    assert w.load(dirs["coded"])["t"] == "loaded"
    e = w.invoke({"code": "NOT_FOUND", "message": "no program 42"}, id="c1")
    assert list(e) == ["t", "id", "kind", "message", "traceback", "code"], e
    assert (e["t"], e["id"], e["kind"], e["message"], e["code"]) == ("error", "c1", "Error", "no program 42", "NOT_FOUND"), e
    tb = e["traceback"]
    assert tb.startswith("no program 42\nstack traceback:\n"), tb
    assert "main.lua:4: in " in tb and "main.lua:9: in " in tb and "hearth_worker" not in tb, tb
    # no message: "" (the traceback starts with the code); a kind is kept
    e = w.invoke({"code": "GONE", "kind": "Missing"}, id="c2")
    assert (e["kind"], e["message"], e["code"]) == ("Missing", "", "GONE"), e
    assert e["traceback"].startswith("GONE\nstack traceback:\n"), e
    longest = "z" + "Az09_.-" * 9
    assert len(longest) == 64 and w.invoke({"code": longest}, id="c3")["code"] == longest
    assert w.invoke({"ok": True}, id="c4")["value"] == "fine"
    assert w.close() == 0


def test_an_invalid_code_is_sent_as_a_plain_error_saying_why(dirs):
    w, _ = started_and_ready()
    assert w.load(dirs["coded"])["t"] == "loaded"
    for code, why in (
        ("not found", 'it contains " "'),
        ("9LIVES", "it does not start with a letter"),
        (".x", "it does not start with a letter"),
        ("A" * 65, "it is 65 bytes long"),
        ("", "it is empty"),
    ):
        e = w.invoke({"code": code, "message": "no program 42"}, id="bad")
        assert e["t"] == "error" and "code" not in e, (code, e)
        assert e["kind"] == "Error", e
        assert e["message"].startswith("invalid error code "), e
        assert why in e["message"] and "[A-Za-z][A-Za-z0-9_.-]*" in e["message"], (why, e)
        assert e["message"].endswith("; its message: no program 42"), e
        assert "main.lua:4: in " in e["traceback"], e
    # a table without a code, or whose code is not a string (a library's
    # numeric one), is as before: kind and message kept, no code
    e = w.invoke({"kind": "ValidationError", "message": "no email"}, id="plain")
    assert (e["kind"], e["message"]) == ("ValidationError", "no email") and "code" not in e, e
    e = w.invoke({"code": 404, "message": "upstream said no"}, id="numeric")
    assert (e["kind"], e["message"]) == ("Error", "upstream said no") and "code" not in e, e
    assert w.close() == 0


def test_printing_a_lot_keeps_the_result_intact(dirs):
    w, _ = started_and_ready()
    assert w.load(dirs["chatty"])["t"] == "loaded"
    r = w.invoke({"lines": 50000}, id="chat")
    assert r == {"t": "result", "id": "chat", "value": {"lines": 50000, "ok": True}}, r
    assert w.close() == 0
    out, err = w.logs()
    lines = out.split(b"\n")
    assert len(lines) == 50001 and lines[-1] == b"no newline at the end", (len(lines), lines[-1])
    assert lines[49999].startswith(b"line 50000 of the log"), lines[49999]
    assert err.count(b"\n") == 50000, err[-100:]


def test_large_payloads_round_trip(dirs):
    w, _ = started_and_ready()
    assert w.load(dirs["echo"])["t"] == "loaded"
    text = ("héllo wörld ☃ " * (8 * 1024 * 1024 // 16 + 1))[: 8 * 1024 * 1024]
    r = w.invoke(text, id="big")
    assert r["t"] == "result" and r["value"] == text, (r["t"], len(r.get("value", "")))
    blob = os.urandom(8 * 1024 * 1024)
    r = w.invoke(blob, id="blob")
    assert r["t"] == "result" and r["value"] == blob and isinstance(r["value"], bytes), r["t"]
    assert w.close() == 0


def test_every_type_round_trips(dirs):
    w, _ = started_and_ready()
    assert w.load(dirs["echo"])["t"] == "loaded"
    payload = {
        "ints": [0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 2**63 - 1,
                 -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, -(2**63)],
        "floats": [1.25, -0.5, 1e300, 0.0, float("inf")],
        "bools": [True, False],
        "nil": None,
        "text": "héllo ☃ 🔥",
        "bytes": b"\x00\xff\xfe",
        "empty_map": {},
        "empty_list": [],
        "nulls": [None, 1, None],
        "nested": {"a": [{"b": []}]},
        "int_keys": {1: "one", 3: "three"},
        "deep": [[[[[[[[[[["deep"]]]]]]]]]]],
    }
    r = w.invoke(payload, id="types")
    v = r["value"]
    expected = dict(payload)
    del expected["nil"]  # a nil map value is left out (README)
    assert v == expected, v
    assert isinstance(v["floats"][3], float)  # floats stay floats
    # uint64 above 2^63-1 comes back exactly (a hearth.uint64 box, README).
    r = w.invoke([2**64 - 1, 2**63], id="u64")
    assert r["value"] == [2**64 - 1, 2**63] and isinstance(r["value"][0], int), r
    # Exact bytes: integers in their smallest encoding, keys in protocol order.
    w.send({"t": "invoke", "id": "b", "deadline_ms": now_ms() + 3000, "payload": [1, -1, 300, 1.5]})
    raw = w.recv_raw()
    want = msgpack.packb({"t": "result", "id": "b", "value": [1, -1, 300, 1.5]})
    assert raw == struct.pack(">I", len(want)) + want, raw.hex()
    assert w.close() == 0


def test_file_shipped_next_to_the_module(dirs):
    w, _ = started_and_ready()
    assert w.load(dirs["files"])["t"] == "loaded"
    r = w.invoke({}, id="f")
    assert r["value"] == {"text": '{"answer": 42}\n', "same": True, "shout": "HI!"}, r
    assert w.close() == 0


def test_load_errors(dirs):
    cases = [
        ("syntax", "main.handler", "SyntaxError", "main.lua:4:"),
        ("no_handler", "main.handler", "EntryNotFound", "'handler'"),
        ("not_callable", "main.handler", "EntryNotFound", "is a string, not a function"),
        ("returns_nothing", "main.handler", "EntryNotFound", "return { handler = handler }"),
        ("boom_at_load", "main.handler", "LoadError", "main.lua:2: boom at load"),
        ("missing_dep", "main.handler", "ModuleNotFound", "main.lua:1: module 'no_such_module_here' not found"),
        ("hello", "nomodule.handler", "ModuleNotFound", "nomodule.lua"),
        ("hello", "handler", "EntryNotFound", "module.handler"),
    ]
    for name, entry, kind, text in cases:
        w, _ = started_and_ready()
        e = w.load(dirs[name], entry=entry)
        assert e["t"] == "error" and e["id"] == "load", e
        assert e["kind"] == kind and text in e["message"], (name, e)
        if name in ("boom_at_load", "missing_dep"):
            assert "stack traceback:" in e["traceback"] and "hearth_worker" not in e["traceback"], e
        else:
            assert e["traceback"] == "", e
        assert w.close() == 0


def test_dotted_entries(dirs):
    w, _ = started_and_ready()
    assert w.load(dirs["dotted"], entry="api.users.get")["t"] == "loaded"
    assert w.invoke({"id": 7})["value"] == "users.get 7"
    assert w.close() == 0
    w, _ = started_and_ready()
    assert w.load(dirs["dotted"], entry="pkg.handler")["t"] == "loaded"
    assert w.invoke({})["value"] == "pkg/init.lua"
    assert w.close() == 0


def test_user_and_tmp_fields_are_ignored(dirs):
    # Pure Lua cannot switch users nor set variables: the daemon starts Lua
    # workers as the function's user, with TMPDIR set, and the shim ignores
    # `uid`, `gid` and `tmp` (README: Users and temporary files).
    w, _ = started_and_ready()
    loaded = w.load(dirs["whoami"], uid=65534, gid=65534, tmp="/nonexistent/tmp")
    assert loaded["t"] == "loaded", loaded
    assert w.invoke({})["value"] == {"uid": os.getuid(), "tmpdir": ""}  # the harness sets no TMPDIR
    assert w.close() == 0


def test_protocol_messages(dirs):
    w, _ = started_and_ready()
    w.send({"t": "invoke", "id": "early", "deadline_ms": now_ms() + 1000, "payload": None})
    assert w.recv() == {"t": "error", "id": "early", "kind": "ProtocolError",
                        "message": "invoke before load", "traceback": ""}
    w.send({"t": "ping", "id": "p1"})
    raw = w.recv_raw()
    assert raw.hex() == "0000000e82a174a4706f6e67a26964a27031", raw.hex()  # the `pong` vector
    w.send({"t": "frobnicate", "id": "x"})
    e = w.recv()
    assert e["kind"] == "ProtocolError" and "frobnicate" in e["message"], e
    assert w.load(dirs["echo"])["t"] == "loaded"
    e = w.load(dirs["echo"])
    assert e["kind"] == "ProtocolError" and "already loaded" in e["message"], e
    # Reserved messages are ignored; unknown keys too.
    w.send({"t": "cancel", "id": "r9"})
    w.send({"t": "call_result", "id": "c1", "ok": True, "value": 1, "error": None})
    w.send({"t": "ping", "id": "p2", "new_key": [1, 2]})
    assert w.recv() == {"t": "pong", "id": "p2"}
    w.send({"t": "shutdown", "id": "s1"})
    assert w.proc.wait(10) == 0
    w.close()


def test_end_of_file_exits_0(dirs):
    w, _ = started_and_ready()
    assert w.close() == 0
    w, _ = started_and_ready()
    w.send_raw(b"\x00\x00\x00\x10ab")  # a frame cut short
    assert w.close() == 0


def test_broken_channel_exits_1(dirs):
    w, _ = started_and_ready()
    w.send_raw(b"\xff\xff\xff\xff")
    assert w.proc.wait(10) == 1
    w.close()
    assert b"over the 67108864 byte limit" in w.logs()[1], w.logs()
    w, _ = started_and_ready()
    w.send_raw(b"\x00\x00\x00\x01\x01")  # a frame that is not a map
    assert w.proc.wait(10) == 1
    w.close()
    assert b"not a map" in w.logs()[1], w.logs()


def test_missing_fds_exit_70(dirs):
    for fds in ("3<&-", "4>&-"):
        p = subprocess.run(["sh", "-c", f'exec {LUA} "$0" 3</dev/null 4>/dev/null {fds}', SHIM],
                           capture_output=True, timeout=10)
        assert p.returncode == 70 and b"is not open" in p.stderr, (fds, p)


# -- nested calls -------------------------------------------------------------------


def nested_worker(dirs):
    w, _ = started_and_ready()
    assert w.load(dirs["nested"])["t"] == "loaded"
    return w


def send_invoke(w, id, payload):
    w.send({"t": "invoke", "id": id, "deadline_ms": now_ms() + 10000, "payload": payload})


def test_invoke_sends_a_call_and_returns_the_value(dirs):
    w = nested_worker(dirs)
    send_invoke(w, "n1", {"mode": "one", "name": "programs", "event": {"user": "u1", "limit": 3}})
    call = w.recv()
    assert call == {"t": "call", "id": call["id"], "parent": "n1", "function": "programs",
                    "payload": {"user": "u1", "limit": 3}}, call
    assert list(call) == ["t", "id", "parent", "function", "payload"], call
    w.send({"t": "call_result", "id": call["id"], "ok": True, "value": [{"id": 1, "title": "News"}], "error": None})
    assert w.recv() == {"t": "result", "id": "n1", "value": {"value": [{"id": 1, "title": "News"}]}}
    # options, in protocol order; the ids differ
    send_invoke(w, "n2", {"mode": "one", "name": "user-interests", "event": {"user": "u1"},
                          "opts": {"version": 2, "timeout_ms": 250}})
    second = w.recv_raw()
    message = msgpack.unpackb(second[4:])
    assert list(message) == ["t", "id", "parent", "function", "payload", "version", "timeout_ms"], message
    assert (message["version"], message["timeout_ms"], message["parent"]) == (2, 250, "n2"), message
    assert message["id"] != call["id"], message
    w.send({"t": "call_result", "id": message["id"], "ok": True, "value": None, "error": None})
    assert w.recv()["value"] == {}, "a nil value leaves the key out"
    send_invoke(w, "n3", {"mode": "one", "name": "programs", "opts": {"alias": "canary"}, "tag": "t"})
    third = w.recv()
    assert list(third) == ["t", "id", "parent", "function", "payload", "alias"] and third["payload"] is None, third
    w.send({"t": "call_result", "id": third["id"], "ok": True, "value": "Welcome", "error": None})
    assert w.recv()["value"] == {"value": "Welcome", "tag": "t"}
    # context:invoke works too
    send_invoke(w, "n4", {"mode": "colon", "name": "f", "event": 7})
    fourth = w.recv()
    assert (fourth["function"], fourth["payload"]) == ("f", 7), fourth
    w.send({"t": "call_result", "id": fourth["id"], "ok": True, "value": 8, "error": None})
    assert w.recv()["value"] == {"value": 8}
    assert w.close() == 0


def test_error_call_results(dirs):
    w = nested_worker(dirs)
    send_invoke(w, "e1", {"mode": "one", "name": "user-interests", "event": {"user": "u1"}})
    call = w.recv()
    w.send({"t": "call_result", "id": call["id"], "ok": False, "value": None, "error": {
        "code": "function_error", "message": "user-interests@2 raised KeyError: 'u1'",
        "function": "user-interests", "version": 2, "request_id": "5f3a0c1200000008", "retryable": False,
        "kind": "KeyError", "traceback": "Traceback (most recent call last):\nKeyError: 'u1'\n"}})
    err = w.recv()["value"]["err"]
    assert err == {
        "code": "function_error", "message": "user-interests@2 raised KeyError: 'u1'",
        "function": "user-interests", "version": 2, "request_id": "5f3a0c1200000008", "retryable": False,
        "error": {"type": "KeyError", "message": "'u1'", "traceback": "Traceback (most recent call last):\nKeyError: 'u1'\n"},
        "text": "HearthInvokeError function_error: user-interests@2 raised KeyError: 'u1'",
        "meta": "HearthInvokeError",
    }, err
    send_invoke(w, "e2", {"mode": "one", "name": "programs"})
    call = w.recv()
    w.send({"t": "call_result", "id": call["id"], "ok": False, "value": None, "error": {
        "code": "recursion", "message": "programs is already in the call chain", "function": "programs",
        "version": None, "request_id": None, "retryable": False}})
    err = w.recv()["value"]["err"]
    assert (err["code"], err["function"], err["retryable"]) == ("recursion", "programs", False), err
    assert "version" not in err and "request_id" not in err and "error" not in err, err
    send_invoke(w, "e3", {"mode": "one", "name": "programs"})
    call = w.recv()
    w.send({"t": "call_result", "id": call["id"], "ok": False, "value": None,
            "error": {"code": "queue_full", "message": "full", "retryable": True}})
    err = w.recv()["value"]["err"]
    assert (err["code"], err["retryable"], err["function"]) == ("queue_full", True, "programs"), err
    # an error table raised again is the handler's error, of kind HearthInvokeError
    send_invoke(w, "e4", {"mode": "rethrow", "name": "programs"})
    call = w.recv()
    w.send({"t": "call_result", "id": call["id"], "ok": False, "value": None,
            "error": {"code": "timeout", "message": "programs timed out", "function": "programs", "retryable": False}})
    e = w.recv()
    assert (e["t"], e["kind"], e["message"]) == ("error", "HearthInvokeError", "programs timed out"), e
    assert "code" not in e, "a nested call's error code is not the function's own: %r" % e
    assert w.close() == 0


def test_invoke_many_sends_all_calls_first(dirs):
    w = nested_worker(dirs)
    items = [
        ["programs", {"limit": 3}],
        {"name": "user-interests", "event": {"user": "u1"}, "version": 2},
        ["programs", {"genre": "news"}, {"alias": "canary", "timeout_ms": 100}],
        ["missing"],
    ]
    send_invoke(w, "fan", {"mode": "many", "list": items})
    calls = [w.recv() for _ in items]
    got = [(c["t"], c["parent"], c["function"], c["payload"], c.get("version"), c.get("alias"), c.get("timeout_ms"))
           for c in calls]
    assert got == [
        ("call", "fan", "programs", {"limit": 3}, None, None, None),
        ("call", "fan", "user-interests", {"user": "u1"}, 2, None, None),
        ("call", "fan", "programs", {"genre": "news"}, None, "canary", 100),
        ("call", "fan", "missing", None, None, None, None),
    ], got
    assert len({c["id"] for c in calls}) == 4
    # answered in reverse order, with a ping and an unknown id between
    w.send({"t": "call_result", "id": calls[3]["id"], "ok": False, "value": None, "error": {
        "code": "function_not_found", "message": "no function missing", "function": "missing",
        "version": None, "request_id": None, "retryable": False}})
    w.send({"t": "call_result", "id": calls[2]["id"], "ok": True, "value": "three", "error": None})
    w.send({"t": "ping", "id": "mid"})
    assert w.recv() == {"t": "pong", "id": "mid"}
    w.send({"t": "call_result", "id": "c999", "ok": True, "value": "stray", "error": None})
    w.send({"t": "call_result", "id": calls[1]["id"], "ok": True, "value": ["news", "sport"], "error": None})
    w.send({"t": "call_result", "id": calls[0]["id"], "ok": True, "value": [1, 2, 3], "error": None})
    reply = w.recv()
    assert reply["id"] == "fan", reply
    v = reply["value"]
    assert v[:3] == [{"value": [1, 2, 3]}, {"value": ["news", "sport"]}, {"value": "three"}], v
    assert list(v[3]) == ["err"] and v[3]["err"]["code"] == "function_not_found", v
    # an empty list sends nothing
    send_invoke(w, "none", {"mode": "many", "list": []})
    assert w.recv() == {"t": "result", "id": "none", "value": []}
    assert w.close() == 0


def test_ping_and_a_pipelined_invoke_while_waiting(dirs):
    w = nested_worker(dirs)
    send_invoke(w, "first", {"mode": "one", "name": "slow", "event": 1})
    call = w.recv()
    send_invoke(w, "second", {"n": 2})  # pipelined: runs after "first" is answered
    w.send({"t": "ping", "id": "p1"})
    assert w.recv() == {"t": "pong", "id": "p1"}
    w.send({"t": "call_result", "id": "c-unknown", "ok": True, "value": 0, "error": None})  # ignored
    w.send({"t": "call_result", "id": call["id"], "ok": True, "value": "slow done", "error": None})
    assert w.recv() == {"t": "result", "id": "first", "value": {"value": "slow done"}}
    assert w.recv() == {"t": "result", "id": "second", "value": {"plain": 2}}
    # a second pipelined invoke that itself calls: still in order
    send_invoke(w, "third", {"mode": "one", "name": "a"})
    call = w.recv()
    send_invoke(w, "fourth", {"mode": "one", "name": "b"})
    w.send({"t": "call_result", "id": call["id"], "ok": True, "value": "A", "error": None})
    assert w.recv()["value"] == {"value": "A"}
    call = w.recv()
    assert (call["function"], call["parent"]) == ("b", "fourth"), call
    w.send({"t": "call_result", "id": call["id"], "ok": True, "value": "B", "error": None})
    assert w.recv() == {"t": "result", "id": "fourth", "value": {"value": "B"}}
    # a shutdown read while waiting waits for the answer
    send_invoke(w, "last", {"mode": "one", "name": "c"})
    call = w.recv()
    w.send({"t": "shutdown", "id": "s"})
    w.send({"t": "call_result", "id": call["id"], "ok": True, "value": "C", "error": None})
    assert w.recv()["value"] == {"value": "C"}
    assert w.proc.wait(10) == 0
    w.close()


def test_end_of_file_while_waiting_exits_0(dirs):
    w = nested_worker(dirs)
    send_invoke(w, "w", {"mode": "one", "name": "slow"})
    assert w.recv()["t"] == "call"
    assert w.close() == 0


def test_nested_call_arguments_are_checked(dirs):
    w = nested_worker(dirs)
    send_invoke(w, "bad", {"mode": "bad"})
    got = w.recv()["value"]
    want = [
        'context.invoke: the function name must be a non-empty string, not ""',
        "context.invoke: the function name must be a non-empty string, not 42",
        "context.invoke: give version or alias, not both",
        "context.invoke: version must be a positive integer, not 0",
        "context.invoke: version must be a positive integer, not 1.5",
        'context.invoke: alias must be a non-empty string, not ""',
        "context.invoke: timeout_ms must be a positive integer (milliseconds), not 0",
        "context.invoke: timeout_ms must be a positive integer (milliseconds), not 100",
        "context.invoke: unknown option timeoutMs (did you mean timeout_ms?); the options are version, alias and timeout_ms",
        "context.invoke: opts must be a table",
        "context.invoke: the event for f cannot be sent: cannot encode a function",
        "context.invoke_many: expects a list of {name, event, opts}, not a string",
        "context.invoke_many item 1: each item is {name, event, opts}",
        'context.invoke_many item 2: the function name must be a non-empty string, not ""',
        "context.invoke_many item 1: timeout_ms must be a positive integer (milliseconds), not -1",
    ]
    assert len(got) == len(want), got
    for text, start in zip(got, want):
        # raised at the handler's line (pcall is the caller here: no position), or with one
        assert start in text, (text, start)
    # nothing was sent for any of them
    w.send({"t": "ping", "id": "after"})
    assert w.recv() == {"t": "pong", "id": "after"}
    # a context kept past its invoke cannot call
    send_invoke(w, "k", {"mode": "keep"})
    assert w.recv()["value"] == "kept"
    send_invoke(w, "s", {"mode": "stale"})
    v = w.recv()["value"]
    assert v == {"ok": False, "err": "context.invoke: request k has already been answered; "
                 "make nested calls while the handler runs"}, v
    assert w.close() == 0



def test_example_user_interests(dirs):
    example = os.path.join(HERE, "..", "..", "examples", "lua", "user-interests")
    w, _ = started_and_ready()
    assert w.load(os.path.abspath(example))["t"] == "loaded"
    assert w.invoke({"user": "u1"})["value"] == {"user": "u1", "genres": ["news", "documentary"]}
    default = w.invoke({"user": "nobody-known"})["value"]
    assert default["user"] == "nobody-known" and isinstance(default["genres"], list) and default["genres"], default
    e = w.invoke({})
    assert (e["t"], e["kind"]) == ("error", "ValueError"), e
    assert 'needs "user"' in e["message"] and "got no user" in e["message"], e
    e = w.invoke({"user": 5})
    assert e["kind"] == "ValueError" and "got a number" in e["message"], e
    assert w.close() == 0


TESTS = [v for k, v in list(globals().items()) if k.startswith("test_")]


def bench():
    """Start-up and round-trip figures (python3 shims/lua/test_worker.py --bench)."""

    def median(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]

    def spawn_only():
        started = time.perf_counter()
        subprocess.run([LUA, "-e", ""], check=True)
        return (time.perf_counter() - started) * 1000

    root = tempfile.mkdtemp(prefix="hearth-lua-bench-")
    try:
        dirs = make_functions(root)
        spawn = [spawn_only() for _ in range(50)]
        ready, load = [], []
        for _ in range(50):
            w = Worker()
            w.recv()
            ready.append((time.perf_counter() - w.started) * 1000)
            t = time.perf_counter()
            assert w.load(dirs["echo"])["t"] == "loaded"
            load.append((time.perf_counter() - t) * 1000)
            w.close()
        print("%s -e '' (spawn + exit), median of 50: %.2f ms" % (LUA, median(spawn)))
        print("start to ready, median of 50: %.2f ms (p90 %.2f ms)" % (median(ready), sorted(ready)[45]))
        print("load round trip (echo function), median of 50: %.2f ms" % median(load))
        w = Worker()
        w.recv()
        w.load(dirs["echo"])
        times = []
        for i in range(2000):
            t = time.perf_counter()
            w.invoke({"name": "Ada"}, id="r%d" % i)
            times.append((time.perf_counter() - t) * 1e6)
        print("warm invoke round trip {name: Ada}, median of 2000: %.0f us" % median(times))
        text = ("héllo wörld ☃ " * (8 * 1024 * 1024 // 16 + 1))[: 8 * 1024 * 1024]
        times = []
        for i in range(10):
            t = time.perf_counter()
            assert w.invoke(text, id="big%d" % i)["value"] == text
            times.append((time.perf_counter() - t) * 1000)
        print("8 MiB string echo round trip (incl. Python msgpack both ways), median of 10: %.1f ms" % median(times))
        w.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def main():
    if shutil.which(LUA) is None:
        print("%s not found: apt-get install lua5.4 (or set HEARTH_LUA)" % LUA)
        return 2
    root = tempfile.mkdtemp(prefix="hearth-lua-test-")
    passed = failed = 0
    try:
        dirs = make_functions(root)
        for test in TESTS:
            started = time.perf_counter()
            try:
                test(dirs)
            except Exception:
                failed += 1
                print("FAIL %s" % test.__name__)
                traceback.print_exc(limit=3)
            else:
                passed += 1
                print("ok   %s (%.0f ms)" % (test.__name__, (time.perf_counter() - started) * 1000))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(bench() if sys.argv[1:] == ["--bench"] else main())
