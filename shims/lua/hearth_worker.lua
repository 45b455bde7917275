--[[ hearth worker shim for Lua 5.4.

Started by the hearth daemon, one process per worker, as
`lua5.4 /abs/path/hearth_worker.lua`. Speaks the protocol in shims/PROTOCOL.md:
length-prefixed MessagePack frames, reading fd 3 and writing fd 4, so that the
function's own stdout and stderr stay free for its logs.

Plain Lua 5.4, no C modules: the codec is hearth.lua, next to this file. The
fds are reached as /dev/fd/3 and /dev/fd/4 (which Linux reopens for pipes).

`require("hearth_worker")` returns this file's functions without serving
(the tests do that).
]]

-- Find hearth.lua next to this file, whatever the working directory is.
local SHIM_DIR = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$"))
  or ((arg and arg[0] or ""):match("^(.*)/[^/]*$"))
  or "."

-- The working directory is the daemon's, not the function's (pure Lua cannot
-- chdir), so the default "./?.lua" entries would look in the wrong place.
local function without_cwd(path)
  local kept = {}
  for item in path:gmatch("[^;]+") do
    if item:sub(1, 2) ~= "./" then kept[#kept + 1] = item end
  end
  return table.concat(kept, ";")
end
-- The daemon may have compiled the shim to bytecode (.luac) next to it.
package.path = SHIM_DIR .. "/?.luac;" .. SHIM_DIR .. "/?.lua;" .. without_cwd(package.path)
package.cpath = without_cwd(package.cpath)

local hearth = require("hearth")

local pack, unpack = string.pack, string.unpack

local M = {}

M.PROTOCOL = 1
M.MAX_FRAME = 64 * 1024 * 1024
M.hearth = hearth

-- Keys of each message in the order PROTOCOL.md lists them: a Lua table has
-- no key order, so frames are encoded from these lists.
M.FIELDS = {
  -- worker -> daemon
  ready = { "t", "protocol", "runtime", "runtime_version", "pid" },
  loaded = { "t", "id", "load_ms" },
  result = { "t", "id", "value" },
  error = { "t", "id", "kind", "message", "traceback" },
  pong = { "t", "id" },
  call = { "t", "id", "parent", "function", "payload" },
  -- daemon -> worker (for tests and tools)
  load = { "t", "id", "dir", "entry", "function", "version", "timeout_ms", "memory_mb" },
  invoke = { "t", "id", "deadline_ms", "payload" },
  ping = { "t", "id" },
  cancel = { "t", "id" },
  call_result = { "t", "id", "ok", "value", "error" },
  shutdown = { "t", "id" },
}

-- Frames --------------------------------------------------------------------

--- Encode a message (a table with `t`) as its frame: the 4-byte big-endian
--- length and the MessagePack body, returned as two strings (so a large body
--- is not copied once more). Raises if a value cannot be encoded or the
--- frame is over the limit.
function M.frame_parts(message)
  local keys = M.FIELDS[message.t]
  if not keys then error("no message type " .. tostring(message.t), 2) end
  if message.t == "call" then
    keys = M.call_fields(message)
  elseif message.t == "error" and message.code ~= nil then
    keys = M.ERROR_WITH_CODE
  end
  local body = hearth.encode_ordered(message, keys)
  if #body > M.MAX_FRAME then
    error(("a frame of %d bytes is over the %d byte limit"):format(#body, M.MAX_FRAME), 0)
  end
  return pack(">I4", #body), body
end

-- An `error` with the function's own error code: `code` comes last.
M.ERROR_WITH_CODE = { "t", "id", "kind", "message", "traceback", "code" }

local CALL_OPTIONS = { "version", "alias", "timeout_ms" }

--- The keys of a `call`: the fixed ones, then those of its options that are set.
function M.call_fields(message)
  local keys = { table.unpack(M.FIELDS.call) }
  for _, key in ipairs(CALL_OPTIONS) do
    if message[key] ~= nil then keys[#keys + 1] = key end
  end
  return keys
end

--- The whole frame of `message` as one string.
function M.encode_frame(message)
  local head, body = M.frame_parts(message)
  return head .. body
end

function M.write_frame(out, message)
  local head, body = M.frame_parts(message)
  assert(out:write(head, body))
  assert(out:flush())
end

--- Decode a frame body into a message: a map with a string `t`. Returns the
--- message, or nil and a reason.
function M.decode_body(body)
  local ok, message = pcall(hearth.decode, body)
  if not ok then return nil, "cannot decode frame: " .. tostring(message) end
  if type(message) ~= "table" or hearth.is_array(message) or type(message.t) ~= "string" then
    return nil, "frame is not a map with a string `t`"
  end
  return message
end

--- Read one frame from the file `input`. Returns the message; or nil,
--- "closed" at end of file (also in the middle of a frame); or nil,
--- "ProtocolError", reason when the channel is broken (a length over the
--- limit, a body that is not a message, a read error).
function M.read_frame(input)
  local head, err = input:read(4)
  if head == nil or #head < 4 then
    if err then return nil, "ProtocolError", "cannot read the protocol pipe: " .. err end
    return nil, "closed"
  end
  local length = unpack(">I4", head)
  if length > M.MAX_FRAME then
    return nil, "ProtocolError",
      ("frame of %d bytes is over the %d byte limit"):format(length, M.MAX_FRAME)
  end
  local body = ""
  if length > 0 then
    body, err = input:read(length) -- stdio loops until it has `length` bytes or EOF
    if body == nil or #body < length then
      if err then return nil, "ProtocolError", "cannot read the protocol pipe: " .. err end
      return nil, "closed"
    end
  end
  local message, why = M.decode_body(body)
  if not message then return nil, "ProtocolError", why end
  return message
end

-- Clocks --------------------------------------------------------------------
--
-- Pure Lua has os.time() (wall clock, whole seconds) and os.clock() (CPU
-- time), nothing finer for the wall clock. /proc/uptime gives a monotonic
-- clock to 10 ms. The wall clock in ms is that plus an offset, known to lie
-- in [lo, hi] from pairs (os.time, uptime) observed so far, and pinned close
-- to its true value at each invoke: the daemon computed the deadline as
-- "now + timeout_ms" just before sending it, so at receipt the wall clock is
-- at least deadline_ms - timeout_ms, and usually within a millisecond of it.

local function uptime_ms()
  local f = io.open("/proc/uptime", "r")
  if not f then return nil end
  local up = f:read("n")
  f:close()
  return up and up * 1000
end

local clock = { lo = nil, hi = nil, pin = nil }

-- Take one (uptime, os.time) sample into the bounds; return the uptime.
local function observe()
  local up = uptime_ms()
  local t = os.time() * 1000
  if not up then return nil, t end
  -- The uptime read may be up to 10 ms behind; os.time() up to 1 s behind
  -- (plus a clock tick: glibc may read the coarse clock).
  local lo, hi = t - up - 10, t + 1010 - up
  if clock.lo == nil or lo > clock.hi or hi < clock.lo then
    clock.lo, clock.hi, clock.pin = lo, hi, nil -- first sample, or a clock step
  else
    clock.lo, clock.hi = math.max(clock.lo, lo), math.min(clock.hi, hi)
  end
  return up, t
end

--- Best estimate of the wall clock, in ms since the Unix epoch (a float).
function M.now_ms()
  local up, t = observe()
  if not up then return t + 500 end -- no /proc: within 500 ms
  local offset = clock.pin or (clock.lo + clock.hi) / 2
  offset = math.min(math.max(offset, clock.lo), clock.hi)
  return up + offset
end

-- An invoke with this deadline arrived now (see above).
local function pin_clock(deadline_ms, timeout_ms)
  local up = observe()
  clock.pin = nil
  if up and math.type(deadline_ms) == "integer" and deadline_ms > 0
      and math.type(timeout_ms) == "integer" and timeout_ms > 0 then
    -- The offset is at least deadline - timeout - (true uptime), and the
    -- true uptime is in [up, up + 10): take the middle. now_ms() keeps the
    -- estimate within [lo, hi], which also bounds a stale deadline.
    local least = deadline_ms - timeout_ms - up - 10
    if least <= clock.hi then clock.pin = least + 5 end
  end
end

-- Errors --------------------------------------------------------------------

local captured_mt = {}

-- xpcall's message handler: keep the error value and the stack as it was.
local function capture(err)
  return setmetatable({ error = err, traceback = debug.traceback(nil, 2) }, captured_mt)
end

-- The traceback without the shim's own frames, so it shows the user's code.
local function user_traceback(tb)
  local lines, dropped = {}, false
  for line in tb:gmatch("[^\n]+") do
    local drop
    if line == "\t(...tail calls...)" then
      drop = dropped -- it belongs to the frame above it
    else
      drop = line:find("%f[%w_]hearth_worker%.lua:%d+:") ~= nil
        or line == "\t[C]: in function 'xpcall'"
        or line == "\t[C]: in ?"
    end
    if not drop then lines[#lines + 1] = line end
    dropped = drop
  end
  if #lines <= 1 then return "" end -- only "stack traceback:" is left
  return table.concat(lines, "\n") .. "\n"
end

-- What an error code may be (PROTOCOL.md, "Error codes").
M.MAX_CODE = 64
local CODE_RULE = ("an error code is 1 to %d characters matching [A-Za-z][A-Za-z0-9_.-]*"):format(M.MAX_CODE)

--- Why `code` cannot be sent as an error code, or nil when it can.
function M.code_problem(code)
  if type(code) ~= "string" then return ("it is a %s, not a string"):format(type(code)) end
  if code == "" then return "it is empty" end
  if #code > M.MAX_CODE then return ("it is %d bytes long"):format(#code) end
  if not code:find("^[A-Za-z]") then return "it does not start with a letter" end
  local bad, seen = {}, {}
  for c in code:gmatch("[^A-Za-z0-9_.%-]") do
    if not seen[c] then
      seen[c] = true
      bad[#bad + 1] = ("%q"):format(c)
    end
  end
  if #bad > 0 then return "it contains " .. table.concat(bad, ", ") end
  return nil
end

local function shown(value)
  if type(value) == "string" then
    local text = ("%q"):format(value)
    if #text > 80 then text = text:sub(1, 77) .. "..." end
    return text
  end
  local ok, text = pcall(tostring, value)
  return ok and text or type(value)
end

--- kind, message and traceback of a failure caught by xpcall(f, capture),
--- and with `codes` (an invoke's answer) its error code or nil. A table error
--- keeps its `kind` and `message` fields (a kind may also come from its
--- metatable's __name); anything else is `default_kind`. A table with a
--- string `code` (not a nested call's error table) is the function's own
--- error code: a valid one is returned (the message is its `message`, or ""),
--- an invalid one makes the message say why, and no code is returned. A
--- table whose `code` is not a string (a library's numeric code) is a plain
--- error, as any other table.
function M.describe_error(captured, default_kind, codes)
  local err, tb = captured, ""
  if getmetatable(captured) == captured_mt then
    err, tb = captured.error, captured.traceback
  end
  local kind, message, raw_code = default_kind, nil, nil
  if type(err) == "table" then
    pcall(function() -- reading fields may run the error's metamethods
      if type(err.kind) == "string" then
        kind = err.kind
      else
        local mt = getmetatable(err)
        if type(mt) == "table" and type(mt.__name) == "string" then kind = mt.__name end
      end
      if type(err.message) == "string" then message = err.message end
      if codes and type(err.code) == "string" and getmetatable(err) ~= M.invoke_error_mt then raw_code = err.code end
    end)
  end
  local code, head = nil, nil
  if raw_code ~= nil then
    local problem = M.code_problem(raw_code)
    if problem == nil then
      code = raw_code
      message = message or ""
      head = message ~= "" and message or code -- the traceback's first line
    else
      message = ("invalid error code %s (%s): %s, so this error is sent without one; raise a code declared "
        .. "in hearth.toml as [errors.CODE]%s"):format(shown(raw_code), problem, CODE_RULE,
        message and message ~= "" and ("; its message: " .. message) or "")
    end
  end
  if message == nil then
    local ok, text = pcall(tostring, err)
    message = ok and text or ("(an error value that cannot be shown: " .. tostring(text) .. ")")
  end
  local trace = user_traceback(tb)
  return kind, message, trace ~= "" and ((head or message) .. "\n" .. trace) or "", code
end

local function error_message(id, kind, message, traceback, code)
  return { t = "error", id = id, kind = kind, message = message, traceback = traceback or "", code = code }
end

-- Loading -------------------------------------------------------------------

local function callable(v)
  if type(v) == "function" then return true end
  local mt = debug.getmetatable(v)
  return mt ~= nil and mt.__call ~= nil
end

--- Load the function named by a `load` message. Returns a function record,
--- or nil, kind, message, traceback. Kinds: ModuleNotFound (no file for the
--- module, or a require() in it found none), SyntaxError (it does not compile), LoadError (it failed while
--- running, or could not be read; a table error keeps its own kind),
--- EntryNotFound (no callable field named by `entry`), ProtocolError.
function M.load_function(message)
  local dir, entry = message.dir, message.entry
  if type(dir) ~= "string" or type(entry) ~= "string" then
    return nil, "ProtocolError", "load needs the strings `dir` and `entry`"
  end
  local module_name, attr = entry:match("^(.+)%.([^.]+)$")
  if not module_name then
    return nil, "EntryNotFound", ("entry %q must look like module.handler"):format(entry)
  end
  if #dir > 1 then dir = dir:gsub("/+$", "") end

  -- The function's own modules come first for its require() calls.
  package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
  package.cpath = dir .. "/?.so;" .. package.cpath

  local rel = module_name:gsub("%.", "/")
  local path
  for _, candidate in ipairs({ dir .. "/" .. rel .. ".lua", dir .. "/" .. rel .. "/init.lua" }) do
    local f = io.open(candidate, "rb")
    if f then
      f:close()
      path = candidate
      break
    end
  end
  if not path then
    return nil, "ModuleNotFound",
      ("module %s not found: no file %s.lua or %s/init.lua in %s"):format(module_name, rel, rel, dir)
  end

  local chunk, err = loadfile(path)
  if not chunk then
    -- loadfile says "cannot open/read <file>" for I/O, "<file>:<line>: ..." otherwise
    return nil, err:find("^cannot ") and "LoadError" or "SyntaxError", err, ""
  end
  -- Run the module as require() would: with its name and path, recorded in
  -- package.loaded so that its own require(module_name) finds it.
  local ok, module = xpcall(chunk, capture, module_name, path)
  if not ok then
    local kind, text, traceback = M.describe_error(module, "LoadError")
    if kind == "LoadError" and text:find("module '[^']+' not found:") then
      kind = "ModuleNotFound" -- a require() of the module failed: a missing dependency
    end
    return nil, kind, text, traceback
  end
  if module == nil then module = package.loaded[module_name] end
  if module == nil then module = true end
  package.loaded[module_name] = module

  if type(module) ~= "table" then
    return nil, "EntryNotFound",
      ("module %s returned %s, not a table with a function '%s'; end %s with `return { %s = %s }`")
        :format(module_name, module == true and "nothing" or ("a " .. type(module)), attr, path, attr, attr)
  end
  local got, handler = pcall(function() return module[attr] end)
  if not got then return nil, M.describe_error(handler, "LoadError") end
  if handler == nil then
    return nil, "EntryNotFound", ("module %s has no field '%s'"):format(module_name, attr)
  end
  if not callable(handler) then
    return nil, "EntryNotFound",
      ("%s.%s is a %s, not a function"):format(module_name, attr, type(handler))
  end
  local memory_mb = message.memory_mb
  return {
    dir = dir,
    path = path,
    handler = handler,
    name = message["function"],
    version = message.version,
    memory_mb = memory_mb == nil and 0 or memory_mb,
    timeout_ms = message.timeout_ms,
  }
end

-- Invoking ------------------------------------------------------------------

-- Nested calls ----------------------------------------------------------------
--
-- context.invoke writes a `call` and reads frames until its `call_result`
-- (PROTOCOL.md, "Nested calls"): meanwhile a `ping` is answered at once, a
-- `call_result` of another call of the same fan-out is kept, one with an
-- unknown id is dropped, and anything else (a pipelined `invoke`, `shutdown`,
-- ...) is queued for the serve loop, which takes it after the current invoke
-- is answered.

--- The channel ended (or broke) while a handler waited: raised through the
--- handler; the serve loop then stops without answering.
local STOPPED = setmetatable({}, {
  __name = "hearth.stopped",
  __tostring = function() return "hearth: the channel to the daemon ended while a nested call waited" end,
})
M.STOPPED = STOPPED

--- Metatable of the error tables context.invoke returns.
local invoke_error_mt = {
  __name = "HearthInvokeError",
  __tostring = function(e)
    return ("HearthInvokeError %s: %s"):format(tostring(e.code), tostring(e.message))
  end,
}
M.invoke_error_mt = invoke_error_mt

-- The callee's own message: the daemon says "<function>@<version> raised <Kind>: <message>".
local function callee_message(message, kind)
  local marker = " raised " .. kind .. ": "
  local at = message:find(marker, 1, true)
  if at then return message:sub(at + #marker) end
  return message
end

--- The error table for the `error` map of a failed call_result.
function M.invoke_error(wire, function_name)
  if type(wire) ~= "table" then wire = {} end
  local function text(v) if type(v) == "string" then return v end end
  local code = text(wire.code) or "unknown"
  local message = text(wire.message) or ("nested call to " .. tostring(function_name) .. " failed (" .. code .. ")")
  local inner = nil
  if code == "function_error" then
    local kind = text(wire.kind) or "Error"
    inner = { type = kind, message = callee_message(message, kind), traceback = text(wire.traceback) or "" }
  end
  return setmetatable({
    code = code,
    message = message,
    ["function"] = text(wire["function"]) or function_name,
    version = math.type(wire.version) == "integer" and wire.version or nil,
    request_id = text(wire.request_id),
    retryable = wire.retryable == true,
    error = inner,
  }, invoke_error_mt)
end

local OPTION_NAMES = { version = true, alias = true, timeout_ms = true }

-- Check one call's arguments; return its `call` message (without id). Raises
-- at `level` (the handler's line) with `where` in the message.
local function call_message(where, parent, name, event, opts, level)
  level = level + 1
  if type(name) ~= "string" or name == "" then
    error(("%s: the function name must be a non-empty string, not %s"):format(where,
      type(name) == "string" and '""' or tostring(name)), level)
  end
  local message = { t = "call", parent = parent, ["function"] = name, payload = event }
  if opts == nil then return message end
  if type(opts) ~= "table" then
    error(("%s: opts must be a table like {version = 2}, {alias = \"canary\"}, {timeout_ms = 250}, not a %s")
      :format(where, type(opts)), level)
  end
  for key in pairs(opts) do
    if not OPTION_NAMES[key] then
      local hint = key == "timeoutMs" and " (did you mean timeout_ms?)" or ""
      error(("%s: unknown option %s%s; the options are version, alias and timeout_ms")
        :format(where, tostring(key), hint), level)
    end
  end
  local version, alias, timeout_ms = opts.version, opts.alias, opts.timeout_ms
  if version ~= nil and alias ~= nil then error(where .. ": give version or alias, not both", level) end
  if version ~= nil then
    if math.type(version) ~= "integer" or version < 1 or version > 0xffffffff then
      error(("%s: version must be a positive integer, not %s"):format(where, tostring(version)), level)
    end
    message.version = version
  end
  if alias ~= nil then
    if type(alias) ~= "string" or alias == "" then
      error(("%s: alias must be a non-empty string, not %s"):format(where,
        alias == "" and '""' or tostring(alias)), level)
    end
    message.alias = alias
  end
  if timeout_ms ~= nil then
    if math.type(timeout_ms) ~= "integer" or timeout_ms < 1 then
      error(("%s: timeout_ms must be a positive integer (milliseconds), not %s"):format(where,
        tostring(timeout_ms)), level)
    end
    message.timeout_ms = timeout_ms
  end
  return message
end

-- Stop: remember why, raise through the handler.
local function stop(session, status, why)
  session.stopped = { status = status, why = why }
  error(STOPPED, 0)
end

-- Send `messages` (checked, without ids) as calls of the running invoke, all
-- in one write; return their ids. Nothing is sent if one cannot be encoded.
local function send_calls(session, where, messages, level)
  level = level + 1
  if session.stopped then error(STOPPED, 0) end
  local parent = messages.parent
  if session.current ~= parent then
    error(("%s: request %s has already been answered; make nested calls while the handler runs")
      :format(where, tostring(parent)), level)
  end
  local parts, ids = {}, {}
  for i, message in ipairs(messages) do
    session.call_seq = session.call_seq + 1
    message.id = "c" .. session.call_seq
    local ok, head, body = pcall(M.frame_parts, message)
    if not ok then
      local which = #messages > 1 and (" (item " .. i .. ")") or ""
      error(("%s: the event for %s%s cannot be sent: %s"):format(where, message["function"], which,
        tostring(head)), level)
    end
    parts[#parts + 1] = head
    parts[#parts + 1] = body
    ids[i] = message.id
  end
  for i, id in ipairs(ids) do session.waiting[id] = messages[i]["function"] end
  local ok, err = session.output:write(table.unpack(parts))
  if ok then ok, err = session.output:flush() end
  if not ok then stop(session, 1, "cannot write to the daemon: " .. tostring(err)) end
  return ids
end

-- Read frames until every call of `ids` has its call_result; return them (by id).
local function await_calls(session, ids)
  local got, wanted, left = {}, {}, 0
  for _, id in ipairs(ids) do
    local early = session.results[id]
    if early then
      got[id], session.results[id] = early, nil
    else
      wanted[id], left = true, left + 1
    end
  end
  while left > 0 do
    local message, status, why = M.read_frame(session.input)
    if not message then
      if status == "closed" then stop(session, 0, nil) end
      stop(session, 1, why)
    end
    local kind = message.t
    if kind == "call_result" then
      local id = message.id
      if wanted[id] then
        session.waiting[id], wanted[id] = nil, nil
        got[id], left = message, left - 1
      elseif session.waiting[id] ~= nil then
        session.waiting[id] = nil
        session.results[id] = message -- another call of this invoke, collected later
      end -- an unknown id: its invoke has ended; dropped
    elseif kind == "ping" then
      local id = message.id
      if id == nil then id = "" end
      M.write_frame(session.output, { t = "pong", id = id })
    else
      session.queue[#session.queue + 1] = message -- taken by the serve loop later
    end
  end
  return got
end

-- The value, or nil and an error table, of one call_result.
local function outcome(message, function_name)
  if message.ok == true then return message.value, nil end
  return nil, M.invoke_error(message.error, function_name)
end

--- context.invoke and context.invoke_many for the invoke `id` of `session`.
local function nested_calls(ctx, session, id)
  function ctx.invoke(a, b, c, d)
    local name, event, opts = a, b, c
    if a == ctx then name, event, opts = b, c, d end
    local message = call_message("context.invoke", id, name, event, opts, 2)
    local list = { message, parent = id }
    local ids = send_calls(session, "context.invoke", list, 2)
    local got = await_calls(session, ids)
    return outcome(got[ids[1]], name)
  end
  function ctx.invoke_many(a, b)
    local list = a
    if a == ctx then list = b end
    if type(list) ~= "table" then
      error("context.invoke_many: expects a list of {name, event, opts}, not a " .. type(list), 2)
    end
    local messages = { parent = id }
    for i = 1, #list do
      local item = list[i]
      local where = "context.invoke_many item " .. i
      if type(item) ~= "table" then
        error(where .. ": each item is {name, event, opts} or {name = ..., event = ..., version = ...}, not a "
          .. type(item), 2)
      end
      if item[1] ~= nil or item.name == nil then
        messages[i] = call_message(where, id, item[1], item[2], item[3], 2)
      else
        local opts = {}
        for k, v in pairs(item) do
          if k ~= "name" and k ~= "event" then opts[k] = v end
        end
        messages[i] = call_message(where, id, item.name, item.event, opts, 2)
      end
    end
    local values, errs = {}, {}
    if #messages == 0 then return values, errs end
    local ids = send_calls(session, "context.invoke_many", messages, 2)
    local got = await_calls(session, ids)
    for i, call_id in ipairs(ids) do
      values[i], errs[i] = outcome(got[call_id], messages[i]["function"])
    end
    return values, errs
  end
end

--- A session: the channel, the function, and what nested calls need.
function M.new_session(input, output)
  return {
    input = input,
    output = output,
    fn = nil,
    queue = {}, -- frames read while a handler waited, for the serve loop
    call_seq = 0,
    current = nil, -- the id of the invoke running
    waiting = {}, -- call id -> callee, for the calls of the running invoke
    results = {}, -- call_results read for calls not yet collected
    stopped = nil,
  }
end

--- The context a handler gets as its second argument. Its functions work
--- called with either `.` or `:`.
function M.new_context(fn, id, deadline_ms, session)
  local ctx = {
    request_id = id,
    aws_request_id = id,
    function_name = fn.name,
    function_version = fn.version,
    memory_limit_in_mb = fn.memory_mb,
    deadline_ms = deadline_ms,
    dir = fn.dir, -- the version's directory (read-only; not the working directory)
    null = hearth.null,
    array_mt = hearth.array_mt,
    hearth = hearth,
  }
  local timeout_ms = math.type(fn.timeout_ms) == "integer" and fn.timeout_ms or math.huge
  function ctx.get_remaining_time_in_millis()
    local left = math.min(deadline_ms - M.now_ms(), timeout_ms)
    return math.max(0, math.floor(left))
  end
  function ctx.path(a, b) -- path of a file shipped with the function
    local rel = a
    if a == ctx then rel = b end
    if type(rel) ~= "string" then error("context.path expects a relative path string", 2) end
    if rel:sub(1, 1) == "/" then return rel end
    return fn.dir .. "/" .. rel
  end
  function ctx.array(a, b) -- hearth.array
    if a == ctx then return hearth.array(b) end
    return hearth.array(a)
  end
  if session then nested_calls(ctx, session, id) end
  return ctx
end

--- Run one invoke; return the answer (a `result` or `error` message).
function M.invoke(fn, message, session)
  local id = message.id
  local deadline_ms = message.deadline_ms
  if deadline_ms == nil then deadline_ms = 0 end
  pin_clock(deadline_ms, fn.timeout_ms)
  local context = M.new_context(fn, id, deadline_ms, session)
  if session then session.current = id end
  local ok, value = xpcall(fn.handler, capture, message.payload, context)
  if session then
    -- Calls still waiting are forgotten: the daemon sends no call_result for them.
    session.current, session.waiting, session.results = nil, {}, {}
  end
  if not ok then
    return error_message(id, M.describe_error(value, "Error", true))
  end
  return { t = "result", id = id, value = value }
end

local function not_serializable(id, why)
  return error_message(id, "ResultNotSerializable",
    "handler returned a value hearth cannot send (" .. tostring(why) .. "); return "
    .. "JSON-like data: tables, strings, numbers, booleans, nil (hearth.null in arrays)")
end

-- Serving ---------------------------------------------------------------------

local function process_id()
  local f = io.open("/proc/self/stat", "r") -- this process, not a child's
  if not f then return 0 end
  local pid = f:read("n")
  f:close()
  return math.tointeger(pid) or 0
end

--- Serve the daemon on the files `input` and `output` until end of file or
--- shutdown. Returns the exit status. `preload`: the body (MessagePack) of
--- a `load` frame already received by hearth's launcher, which also sent
--- `ready` (PROTOCOL.md, "Generic workers"); it is served first.
function M.serve(input, output, preload)
  local fn = nil
  local session = M.new_session(input, output)
  local queue = session.queue
  if preload then
    local message, why = M.decode_body(preload)
    if not message then
      io.stderr:write("hearth worker: the load passed by the launcher: ", tostring(why), "\n")
      return 1
    end
    queue[1] = message
  else
    M.write_frame(output, {
      t = "ready",
      protocol = M.PROTOCOL,
      runtime = "lua",
      runtime_version = _VERSION:match("%d+%.%d+") or _VERSION,
      pid = process_id(),
    })
  end
  while true do
    local message, status, why
    if queue[1] ~= nil then
      message = table.remove(queue, 1) -- read while a handler waited for a call_result
    else
      message, status, why = M.read_frame(input)
    end
    if not message then
      if status == "closed" then return 0 end
      io.stderr:write("hearth worker: ", why, "\n")
      return 1
    end
    local kind = message.t
    local id = message.id
    if id == nil then id = "" end
    if kind == "invoke" then
      if fn == nil then
        M.write_frame(output, error_message(id, "ProtocolError", "invoke before load"))
      else
        local answer = M.invoke(fn, message, session)
        local stopped = session.stopped
        if stopped then
          -- The channel ended while the handler waited for a nested call.
          if stopped.why then io.stderr:write("hearth worker: ", stopped.why, "\n") end
          return stopped.status
        end
        -- Everything the call printed must be in the pipes before its answer
        -- (the daemon collects the call's log when the answer arrives).
        io.stdout:flush()
        io.stderr:flush()
        local ok, head, body = pcall(M.frame_parts, answer)
        if not ok then
          head, body = M.frame_parts(not_serializable(id, head))
        end
        assert(output:write(head, body))
        assert(output:flush())
      end
    elseif kind == "load" then
      if fn ~= nil then
        M.write_frame(output, error_message(id, "ProtocolError", "code is already loaded"))
      else
        local wall, cpu = uptime_ms(), os.clock()
        local loaded, err_kind, err_message, traceback = M.load_function(message)
        if loaded then
          fn = loaded
          session.fn = loaded
          -- CPU time is precise; the wall clock is known to 10 ms. Loading
          -- is mostly CPU, so prefer CPU time unless clearly more passed.
          local load_ms = (os.clock() - cpu) * 1000.0
          local now = uptime_ms()
          if wall and now and now - wall - 10 > load_ms then load_ms = now - wall end
          M.write_frame(output, { t = "loaded", id = id, load_ms = load_ms + 0.0 })
        else
          M.write_frame(output, error_message(id, err_kind, err_message, traceback))
        end
      end
    elseif kind == "ping" then
      M.write_frame(output, { t = "pong", id = id })
    elseif kind == "shutdown" then
      return 0
    elseif kind == "cancel" or kind == "call_result" then
      -- cancel is reserved; a call_result here belongs to an invoke already answered
    else
      M.write_frame(output, error_message(id, "ProtocolError", "unknown message type " .. ("%q"):format(kind)))
    end
  end
end

function M.main()
  -- Check both fds before opening either: a new file takes the lowest free
  -- fd number, so opening /dev/fd/3 while fd 4 is closed would make "fd 4"
  -- that very file. (The check handles are closed again at once.)
  for fd = 3, 4 do
    local probe = io.open("/proc/self/fdinfo/" .. fd, "r")
    if not probe then
      io.stderr:write(("hearth worker: fd %d is not open (or /proc is not mounted); "
        .. "this program is started by the hearth daemon\n"):format(fd))
      return 70
    end
    probe:close()
  end
  local input = assert(io.open("/dev/fd/3", "rb"))
  local output = assert(io.open("/dev/fd/4", "wb"))
  output:setvbuf("full", 1 << 16) -- one write per frame: flushed after each
  io.stdout:setvbuf("line") -- logs reach the daemon as they are printed
  local preload = nil
  if arg and arg[1] == "--load" and type(arg[2]) == "string" then
    preload = arg[2]:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
  end
  return M.serve(input, output, preload)
end

-- Serve when run as a script; return the module when required.
if ... == "hearth_worker" then return M end
os.exit(M.main())
