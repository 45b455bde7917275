--[[ The Lua shim's side of the shared protocol vectors (../protocol-vectors.json)
and its MessagePack codec (hearth.lua).

Run from anywhere: lua5.4 shims/lua/test_protocol.lua
Prints one line per test and "N passed, M failed"; exits 1 if any failed.
]]

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = HERE .. "/?.lua;" .. package.path

local worker = require("hearth_worker") -- the shim's functions, without serving
local hearth = require("hearth")
local null = hearth.null

-- A small test runner ----------------------------------------------------------

local tests = {}
local function test(name, fn) tests[#tests + 1] = { name = name, fn = fn } end

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end
local function unhex(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

-- Deep comparison: integer and float subtypes must match, arrays (marked)
-- and maps must not be confused, hearth.null is itself.
local function show(v)
  if type(v) == "string" then return ("%q"):format(#v > 60 and v:sub(1, 60) .. "..." or v) end
  if math.type(v) then return math.type(v) .. " " .. tostring(v) end
  return tostring(v)
end
local function same(a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then
    return false, ("%s: %s vs %s"):format(path, show(a), show(b))
  end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then
      return false, ("%s: %s vs %s"):format(path, show(a), show(b))
    end
    if a ~= b and not (a ~= a and b ~= b) then
      return false, ("%s: %s vs %s"):format(path, show(a), show(b))
    end
    if a == 0 and math.type(a) == "float" and 1 / a ~= 1 / b then
      return false, path .. ": the signs of zero differ"
    end
    return true
  end
  if type(a) ~= "table" or a == null or b == null then
    if a == b then return true end
    return false, ("%s: %s vs %s"):format(path, show(a), show(b))
  end
  if hearth.is_array(a) ~= hearth.is_array(b) then
    return false, path .. ": array vs map (" .. tostring(hearth.is_array(a)) .. ")"
  end
  if getmetatable(a) ~= getmetatable(b) then return false, path .. ": different markers" end
  for k, v in pairs(a) do
    local ok, why = same(v, b[k], path .. "[" .. show(k) .. "]")
    if not ok then return false, why end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. "[" .. show(k) .. "]: missing on the left" end
  end
  return true
end

local function check(cond, ...)
  if not cond then error(table.concat({ ... }, " "), 2) end
end
local function eq(a, b, what)
  local ok, why = same(a, b)
  if not ok then error((what and (what .. ": ") or "") .. why, 2) end
end
local function raises(fn, pattern, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error matching " .. pattern, 2) end
  if not tostring(err):find(pattern) then
    error("error " .. show(tostring(err)) .. " does not match " .. pattern, 2)
  end
end

-- A tiny JSON reader (for the vectors file) --------------------------------------
-- Same mapping as the codec: arrays are marked, null is hearth.null in
-- arrays and leaves the key out in objects; integers that fit a Lua integer
-- are integers, other numbers floats (as Lua's own tonumber does).

local function json_decode(text)
  local pos = 1
  local function fail(what) error(("JSON: %s at byte %d"):format(what, pos), 0) end
  local function skip() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local value
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = text:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1 break end
      if c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        local simple = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
        if simple[e] then
          out[#out + 1] = simple[e]
          pos = pos + 2
        elseif e == "u" then
          local cp = tonumber(text:sub(pos + 2, pos + 5), 16) or fail("bad \\u escape")
          pos = pos + 6
          if cp >= 0xd800 and cp <= 0xdbff and text:sub(pos, pos + 1) == "\\u" then
            local low = tonumber(text:sub(pos + 2, pos + 5), 16)
            if low and low >= 0xdc00 and low <= 0xdfff then
              cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00)
              pos = pos + 6
            end
          end
          out[#out + 1] = utf8.char(cp)
        else
          fail("bad escape")
        end
      else
        local run = text:match('^[^"\\]+', pos)
        out[#out + 1] = run
        pos = pos + #run
      end
    end
    return table.concat(out)
  end
  function value()
    skip()
    local c = text:sub(pos, pos)
    if c == "{" then
      local t = {}
      pos = pos + 1
      skip()
      if text:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        skip()
        if text:sub(pos, pos) ~= '"' then fail("expected a key") end
        local k = str()
        skip()
        if text:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        t[k] = value() -- null leaves the key out
        skip()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      local t = hearth.array()
      pos = pos + 1
      skip()
      if text:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        local v = value()
        if v == nil then v = null end
        t[#t + 1] = v
        skip()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return str()
    elseif text:find("^true", pos) then pos = pos + 4 return true
    elseif text:find("^false", pos) then pos = pos + 5 return false
    elseif text:find("^null", pos) then pos = pos + 4 return nil
    else
      local num = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos) or fail("unexpected character")
      pos = pos + #num
      local v = tonumber(num) or fail("bad number " .. num)
      if math.type(v) == "float" and num:match("^%d+$") then
        -- an integer literal above math.maxinteger: the codec's exact uint64 box
        local bits = 0
        for digit in num:gmatch("%d") do bits = bits * 10 + tonumber(digit) end -- wraps mod 2^64
        return hearth.uint64(bits)
      end
      return v
    end
  end
  local v = value()
  skip()
  if pos <= #text then fail("trailing characters") end
  return v
end

-- Frames through a real pipe -------------------------------------------------------

local function with_pipe(bytes, fn)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  local pipe = assert(io.popen("cat '" .. path .. "'", "r")) -- a pipe, like fd 3
  local results = table.pack(pcall(fn, pipe))
  pipe:close()
  os.remove(path)
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

local function read_from(bytes)
  return with_pipe(bytes, function(pipe) return worker.read_frame(pipe) end)
end

-- The vectors ------------------------------------------------------------------------

local vectors_file = assert(io.open(HERE .. "/../protocol-vectors.json", "rb"))
local vectors_json = json_decode(vectors_file:read("a"))
vectors_file:close()
assert(vectors_json.protocol == worker.PROTOCOL, "vectors are for another protocol version")

for _, v in ipairs(vectors_json.vectors) do
  test("vector " .. v.name .. " decodes to its message", function()
    local message, status, why = read_from(unhex(v.hex))
    check(message, "read_frame failed:", tostring(status), tostring(why))
    eq(message, v.message)
  end)
  if v.direction == "worker_to_daemon" then
    test("vector " .. v.name .. " encodes to its bytes", function()
      local frame = worker.encode_frame(v.message)
      local payload = v.message.payload
      local count = 0
      if type(payload) == "table" and not hearth.is_array(payload) then
        for _ in pairs(payload) do count = count + 1 end
      end
      if count > 1 then
        -- A Lua table has no key order, so a payload map of several keys may
        -- come out in another order: the same bytes up to the payload, the
        -- same length, the same meaning.
        local want = unhex(v.hex)
        local cut = want:find("\xa7payload", 1, true) + 8
        check(frame:sub(1, cut) == want:sub(1, cut) and #frame == #want,
          "\n got  " .. hex(frame) .. "\n want " .. v.hex)
        eq(read_from(frame), v.message)
      else
        check(hex(frame) == v.hex, "\n got  " .. hex(frame) .. "\n want " .. v.hex)
      end
    end)
  end
end

test("every vector is used", function()
  check(#vectors_json.vectors >= 14, "only", #vectors_json.vectors, "vectors")
end)

test("two frames in a row, then end of file means closed", function()
  local one = worker.encode_frame({ t = "pong", id = "a" })
  local two = worker.encode_frame({ t = "pong", id = "b" })
  with_pipe(one .. two, function(pipe)
    eq(worker.read_frame(pipe), { t = "pong", id = "a" })
    eq(worker.read_frame(pipe), { t = "pong", id = "b" })
    local m, status = worker.read_frame(pipe)
    check(m == nil and status == "closed", tostring(status))
  end)
end)

test("end of file mid-frame means closed", function()
  local m, status = read_from("\0\0\0\5ab")
  check(m == nil and status == "closed", tostring(status))
  m, status = read_from("\0\0")
  check(m == nil and status == "closed", tostring(status))
  m, status = read_from("")
  check(m == nil and status == "closed", tostring(status))
end)

test("oversized frame is refused", function()
  local m, status, why = read_from("\xff\xff\xff\xff")
  check(m == nil and status == "ProtocolError", tostring(status))
  check(why:find("over the 67108864 byte limit"), why)
  m, status = read_from(string.pack(">I4", 64 * 1024 * 1024 + 1))
  check(m == nil and status == "ProtocolError", tostring(status))
end)

test("a frame that is not a message is refused", function()
  for _, body in ipairs({ "\x01", "\x91\xa1t", "\x81\xa1t\x01", "\x80\x80", "\xc1", "" }) do
    local m, status = read_from(string.pack(">I4", #body) .. body)
    check(m == nil and status == "ProtocolError", hex(body), tostring(status))
  end
end)

test("unknown keys are ignored and keys come in any order", function()
  local body = "\x83\xa2id\xa2p9\xa3new\x92\x01\x02\xa1t\xa4ping"
  local m = read_from(string.pack(">I4", #body) .. body)
  check(m and m.t == "ping" and m.id == "p9", "decoded", tostring(m))
end)

test("messages are encoded with keys in PROTOCOL.md order", function()
  local frame = worker.encode_frame({ traceback = "", message = "m", kind = "K", id = "i", t = "error" })
  check(frame:sub(5) == "\x85\xa1t\xa5error\xa2id\xa1i\xa4kind\xa1K\xa7message\xa1m\xa9traceback\xa0",
    hex(frame))
  frame = worker.encode_frame({ t = "result", id = "x" }) -- value nil is still sent
  check(frame:sub(5) == "\x83\xa1t\xa6result\xa2id\xa1x\xa5value\xc0", hex(frame))
  raises(worker.encode_frame, "no message type", { t = "nope" })
end)

test("a frame over 64 MiB is not encoded", function()
  raises(worker.frame_parts, "over the 67108864 byte limit",
    { t = "result", id = "x", value = string.rep("a", 64 * 1024 * 1024) })
end)

-- The codec: every MessagePack type ------------------------------------------------------

local function round_trip(v, want_hex, what)
  local bytes = hearth.encode(v)
  if want_hex then
    check(hex(bytes) == want_hex, what or show(v), "encodes to", hex(bytes), "not", want_hex)
  end
  local back = hearth.decode(bytes)
  eq(back, v, what or show(v))
  return bytes
end

test("nil and booleans", function()
  round_trip(nil, "c0")
  round_trip(true, "c3")
  round_trip(false, "c2")
  check(hearth.encode(null) == "\xc0", "hearth.null is nil")
end)

test("integers at every width boundary", function()
  local cases = {
    { 0, "00" }, { 1, "01" }, { 127, "7f" }, { 128, "cc80" }, { 255, "ccff" }, { 256, "cd0100" },
    { 65535, "cdffff" }, { 65536, "ce00010000" }, { 4294967295, "ceffffffff" },
    { 4294967296, "cf0000000100000000" }, { math.maxinteger, "cf7fffffffffffffff" },
    { -1, "ff" }, { -32, "e0" }, { -33, "d0df" }, { -128, "d080" }, { -129, "d1ff7f" },
    { -32768, "d18000" }, { -32769, "d2ffff7fff" }, { -2147483648, "d280000000" },
    { -2147483649, "d3ffffffff7fffffff" }, { math.mininteger, "d38000000000000000" },
  }
  for _, c in ipairs(cases) do round_trip(c[1], c[2]) end
end)

test("wider encodings of small integers decode to integers", function()
  eq(hearth.decode("\xcd\x00\x05"), 5)
  eq(hearth.decode("\xd3\xff\xff\xff\xff\xff\xff\xff\xff"), -1)
  eq(hearth.decode("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff"), math.maxinteger)
end)

test("uint64 above 2^63-1 decodes to an exact hearth.uint64 and encodes back", function()
  for _, dec in ipairs({
    "9223372036854775808", "9223372036854776832", "9223372036854776833",
    "9223372036854778880", "18446744073709550591", "18446744073709550592",
    "18446744073709551615", "12345678901234567890",
  }) do
    local n = 0 -- the uint64 bits of the decimal
    for digit in dec:gmatch("%d") do n = n * 10 + tonumber(digit) end -- wraps mod 2^64
    local bytes = "\xcf" .. string.pack(">i8", n)
    local got = hearth.decode(bytes)
    check(getmetatable(got) == hearth.uint64_mt, dec)
    eq(got.bits, n, dec)
    eq(tostring(got), dec, dec)
    eq(hearth.encode(got), bytes, dec)
  end
end)

test("floats", function()
  round_trip(1.5, "cb3ff8000000000000")
  round_trip(0.0, "cb0000000000000000")
  round_trip(-0.0, "cb8000000000000000")
  round_trip(1.0, "cb3ff0000000000000") -- a float stays a float
  for _, f in ipairs({ -0.5, 1e300, -1e-300, math.pi, 2.0 ^ 63, 2.0 ^ 64, math.huge, -math.huge, 0 / 0 }) do
    round_trip(f)
  end
  eq(hearth.decode("\xca" .. string.pack(">f", 1.25)), 1.25, "float 32")
end)

test("strings: unicode, every length class, binary", function()
  round_trip("", "a0")
  round_trip("a", "a161")
  round_trip("héllo ☃ 🔥", "af68c3a96c6c6f20e2988320f09f94a5")
  local heads = { [31] = "bf", [32] = "d920", [255] = "d9ff", [256] = "da0100",
    [65535] = "daffff", [65536] = "db00010000" }
  for len, head in pairs(heads) do
    local s = string.rep("x", len)
    local bytes = round_trip(s, nil, "string of " .. len)
    check(hex(bytes:sub(1, #head // 2)) == head, len, hex(bytes:sub(1, 5)))
  end
  -- Bytes that are not UTF-8 go as bin; bin decodes to a string.
  round_trip("\xff\xfe\x00", "c403fffe00")
  round_trip("\xed\xa0\x80", "c403eda080") -- a UTF-16 surrogate is not UTF-8
  eq(hearth.decode("\xc4\x03abc"), "abc")
  eq(hearth.decode("\xc5\x00\x03abc"), "abc")
  eq(hearth.decode("\xc6\x00\x00\x00\x03abc"), "abc")
  check(hex(hearth.encode(hearth.bin("abc"))) == "c403616263", "hearth.bin")
  local big = string.rep("\xff", 70000)
  check(hearth.encode(big):sub(1, 5) == "\xc6\x00\x01\x11\x70", "bin 32 header")
  eq(hearth.decode(hearth.encode(big)), big)
  check(hearth.encode(string.rep("\xff", 300)):sub(1, 3) == "\xc5\x01\x2c", "bin 16 header")
end)

test("arrays: every length class, nested, with nils", function()
  round_trip(hearth.array({ 1, 2, 3 }), "93010203")
  check(hex(hearth.encode({ 1, 2, 3 })) == "93010203", "an unmarked 1..n table is an array")
  for len, head in pairs({ [15] = "9f", [16] = "dc0010", [65535] = "dcffff", [65536] = "dd00010000" }) do
    local t = {}
    for i = 1, len do t[i] = i % 7 end
    local bytes = hearth.encode(t)
    check(hex(bytes:sub(1, #head // 2)) == head, len, hex(bytes:sub(1, 5)))
    local back = hearth.decode(bytes)
    check(hearth.is_array(back) and #back == len, "length", #back)
  end
  round_trip(hearth.array({ 1, null, 3 }), "9301c003")
  local back = hearth.decode("\x93\xc0\xc0\xc0")
  check(#back == 3 and back[1] == null and back[3] == null, "nils in arrays are hearth.null")
  round_trip(hearth.array({ hearth.array({ hearth.array() }), { a = hearth.array({ "x" }) } }), "929190" .. "81a16191a178")
end)

test("maps: every length class, key types", function()
  round_trip({ a = 1 }, "81a16101")
  for len, head in pairs({ [15] = "8f", [16] = "de0010", [65536] = "df00010000" }) do
    local t = {}
    for i = 1, len do t["k" .. i] = i end
    local bytes = hearth.encode(t)
    check(hex(bytes:sub(1, #head // 2)) == head, len, hex(bytes:sub(1, 5)))
    eq(hearth.decode(bytes), t)
  end
  round_trip({ [1] = "one", [3] = "three" }) -- keys that are not 1..n: a map
  check(hearth.encode({ [1] = "a", [3] = "b" }):byte() == 0x82, "a sparse table is a map")
  check(hearth.encode({ 1, 2, x = 3 }):byte() == 0x83, "a table with extra keys is a map")
  check(hearth.encode({ [2] = "b", [3] = "c" }):byte() == 0x82, "keys 2..3 are a map")
  check(hearth.encode({ [0] = "z", "a" }):byte() == 0x82, "key 0 makes a map")
  round_trip({ [true] = 1, [2.5] = "f", [-7] = hearth.array() })
  eq(hearth.decode("\x82\xa1a\xc0\xa1b\x01"), { b = 1 }, "a nil value leaves the key out")
  eq(hearth.decode("\x81\xc0\x01"), { [null] = 1 }, "a nil key is hearth.null")
  check(hex(hearth.encode({ [null] = 1 })) == "81c001", "hearth.null as a key")
  raises(hearth.decode, "NaN", "\x81\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00\x01")
end)

test("empty containers", function()
  round_trip({}, "80")
  round_trip(hearth.array(), "90")
  local back = hearth.decode("\x90")
  check(hearth.is_array(back) and next(back) == nil, "a decoded [] is a marked array")
  check(hearth.encode(back) == "\x90", "and stays an array")
  check(not hearth.is_array(hearth.decode("\x80")), "a decoded {} is a map")
  eq(hearth.decode("\xdc\x00\x00"), hearth.array())
  eq(hearth.decode("\xde\x00\x00"), {})
end)

test("extension values", function()
  for _, len in ipairs({ 1, 2, 4, 8, 16, 0, 3, 17, 255, 256, 65536 }) do
    round_trip(hearth.ext(-1, string.rep("e", len)), nil, "ext of " .. len)
  end
  check(hex(hearth.encode(hearth.ext(5, "abcd"))) == "d60561626364", "fixext 4")
  check(hex(hearth.encode(hearth.ext(5, "abc"))) == "c70305616263", "ext 8")
  local e = hearth.decode("\xd4\x7f\x01")
  check(getmetatable(e) == hearth.ext_mt and e.type == 127 and e.data == "\x01", "ext decodes")
end)

test("deep nesting, and its limit", function()
  local t = hearth.array()
  local inner = t
  for _ = 2, 500 do
    local next_level = hearth.array()
    inner[1] = next_level
    inner = next_level
  end
  inner[1] = "bottom"
  local back = hearth.decode(hearth.encode(t))
  for _ = 1, 500 do back = back[1] end
  check(back == "bottom", "500 levels")
  local deep = {}
  local cur = deep
  for _ = 1, hearth.MAX_DEPTH do cur.x = {} cur = cur.x end
  raises(hearth.encode, "nested deeper than 1000 levels at value%.x%.x", deep)
  raises(hearth.decode, "nested deeper than 1000", string.rep("\x91", 1001) .. "\xc0")
end)

test("values that cannot be encoded say what and where", function()
  raises(hearth.encode, "cannot encode a function at value$", print)
  raises(hearth.encode, "cannot encode a thread at value%.co", { co = coroutine.create(print) })
  raises(hearth.encode, "cannot encode a userdata at value%[2%]", { 1, io.stdout })
  raises(hearth.encode, "cannot encode a function at value%[\"a key\"%]", { ["a key"] = print })
  local r = { 1 }
  r[2] = r
  raises(hearth.encode, "a table that contains itself at value%[2%]", r)
  local shared = hearth.array({ 1 })
  round_trip({ a = shared, b = shared }) -- shared, not recursive: fine
end)

test("malformed input is refused", function()
  raises(hearth.decode, "truncated", "\x92\x01")
  raises(hearth.decode, "truncated", "\xa5abc")
  raises(hearth.decode, "truncated", "\xcd\x01")
  raises(hearth.decode, "truncated", "\xdb\x00\x00\x00\x09abc")
  raises(hearth.decode, "truncated", "")
  raises(hearth.decode, "0xc1", "\xc1")
  raises(hearth.decode, "1 bytes after the value", "\x01\x02")
end)

test("encode_ordered keeps the given key order", function()
  local bytes = hearth.encode_ordered({ b = 2, a = 1, c = 3 }, { "c", "a", "b", "d" })
  check(hex(bytes) == "84a16303a16101a16202a164c0", hex(bytes))
end)

test("hearth.null is read-only and marked", function()
  raises(function() null.x = 1 end, "read%-only")
  raises(setmetatable, "protected", null, {})
  check(tostring(null) == "hearth.null", tostring(null))
end)

-- Pieces of the worker ------------------------------------------------------------------

test("errors keep a table's kind and message", function()
  local function fail_with(e) return select(2, xpcall(error, function(x) return x end, e)) end
  local kind, message = worker.describe_error(fail_with({ kind = "NotFound", message = "no such user" }), "Error")
  check(kind == "NotFound" and message == "no such user", kind, message)
  kind, message = worker.describe_error(fail_with("plain"), "Error")
  check(kind == "Error" and message == "plain", kind, message)
  kind = worker.describe_error(fail_with(setmetatable({}, { __name = "MyError" })), "Error")
  check(kind == "MyError", kind)
  kind, message = worker.describe_error(fail_with(setmetatable({}, { __tostring = function() error("no") end })), "Error")
  check(kind == "Error" and message:find("cannot be shown"), message)
end)

test("a table's code is the function's own error code when it is valid", function()
  local function fail_with(e) return select(2, xpcall(error, function(x) return x end, e)) end
  local kind, message, _, code = worker.describe_error(fail_with({ code = "NOT_FOUND", message = "no program 42" }), "Error", true)
  check(kind == "Error" and message == "no program 42" and code == "NOT_FOUND", kind, message, tostring(code))
  kind, message, _, code = worker.describe_error(fail_with({ code = "GONE", kind = "Missing" }), "Error", true)
  check(kind == "Missing" and message == "" and code == "GONE", kind, message, tostring(code))
  -- not for a load (codes is false), nor for a nested call's error table raised again
  _, message, _, code = worker.describe_error(fail_with({ code = "NOT_FOUND", message = "m" }), "LoadError")
  check(code == nil and message == "m", tostring(code))
  _, _, _, code = worker.describe_error(fail_with(worker.invoke_error({ code = "timeout", message = "slow" }, "f")), "Error", true)
  check(code == nil, tostring(code))
  -- an invalid code: a plain error saying why
  _, message, _, code = worker.describe_error(fail_with({ code = "no way", message = "m" }), "Error", true)
  check(code == nil and message:find('^invalid error code "no way" %(it contains " "%)') and message:find("; its message: m$"), message)
  _, message, _, code = worker.describe_error(fail_with({ code = 404, message = "upstream" }), "Error", true)
  check(code == nil and message == "upstream", message) -- not a string: a plain table error
  for _, bad in ipairs({ "", "1a", ("x"):rep(65), 7 }) do
    check(worker.code_problem(bad) ~= nil, show(bad))
  end
  for _, good in ipairs({ "a", "NOT_FOUND", "v1.2-beta_3", "z" .. ("Az09_.-"):rep(9) }) do
    check(worker.code_problem(good) == nil, good, tostring(worker.code_problem(good)))
  end
end)

test("an error frame with a code has it last, one without has none", function()
  local frame = worker.encode_frame({ code = "X", traceback = "", message = "m", kind = "K", id = "i", t = "error" })
  check(frame:sub(5) == "\x86\xa1t\xa5error\xa2id\xa1i\xa4kind\xa1K\xa7message\xa1m\xa9traceback\xa0\xa4code\xa1X",
    hex(frame))
end)

test("the context's helpers work with . and :", function()
  local ctx = worker.new_context({ dir = "/code/v1", name = "f", version = 2, memory_mb = 64, timeout_ms = 1000 },
    "r1", 0)
  check(ctx.path("data.json") == "/code/v1/data.json", ctx.path("data.json"))
  check(ctx:path("a/b.txt") == "/code/v1/a/b.txt", ctx:path("a/b.txt"))
  check(ctx.path("/etc/hosts") == "/etc/hosts", "absolute paths are kept")
  check(ctx.get_remaining_time_in_millis() == 0 and ctx:get_remaining_time_in_millis() == 0, "past deadline")
  check(hearth.is_array(ctx.array()) and hearth.is_array(ctx:array({ 1 })), "array")
  check(not hearth.is_array(ctx), "ctx:array() does not mark the context")
  check(ctx.null == null and ctx.request_id == "r1" and ctx.aws_request_id == "r1", "fields")
end)

test("the wall clock is right to within a second", function()
  local now = worker.now_ms()
  local t = os.time() * 1000
  check(now >= t - 1000 and now <= t + 2000, now, t)
end)

-- Run ---------------------------------------------------------------------------------

local passed, failed = 0, 0
for _, t in ipairs(tests) do
  local ok, err = pcall(t.fn)
  if ok then
    passed = passed + 1
    print("ok   " .. t.name)
  else
    failed = failed + 1
    print("FAIL " .. t.name .. ": " .. tostring(err))
  end
end
print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
