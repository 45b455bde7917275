--[[ hearth: the Lua side of hearth's values (a MessagePack codec and markers).

Handlers get this module with `require("hearth")` (it is already loaded in a
worker) or through their context (`context.null`, `context.array`, ...).
The worker shim (hearth_worker.lua) uses it to speak shims/PROTOCOL.md.

How Lua values map to MessagePack (shims/lua/README.md says the same, with
reasons):

  encode                                  decode
  nil, hearth.null     -> nil             nil     -> nil (hearth.null in arrays
                                                     and as a map key; a map
                                                     entry whose value is nil
                                                     is left out)
  true / false         -> bool            bool    -> boolean
  integer subtype      -> smallest int    int     -> integer; uint64 above
                                                     2^63-1 -> hearth.uint64
  float subtype        -> float 64        float   -> float (32 and 64)
  string, valid UTF-8  -> str             str     -> string
  string, other bytes  -> bin             bin     -> string
  hearth.bin(s)        -> bin             ext     -> hearth.ext(type, data)
  hearth.ext(type, s)  -> ext
  table marked with hearth.array_mt
                       -> array of t[1..#t]        array -> table marked with
  table whose keys are exactly 1..n (n >= 1)                hearth.array_mt
                       -> array
  any other table (including {})
                       -> map                      map -> plain table
  function, userdata, thread, a recursive table, nesting deeper than
  MAX_DEPTH -> error

Pure Lua 5.4, no C modules: string.pack/string.unpack do the byte work.
The encoder appends pieces to one buffer table and concatenates once; the
decoder walks the frame string with an index. Neither calls user code (no
metamethods are honoured while encoding, except the hearth markers).
]]

local M = {}

local byte, char, sub = string.byte, string.char, string.sub
local pack, unpack = string.pack, string.unpack
local concat = table.concat
local math_type = math.type
local utf8_len = utf8.len
local next, type, rawlen, pcall, error, tostring =
    next, type, rawlen, pcall, error, tostring
local getmetatable, setmetatable = getmetatable, setmetatable

--- Deepest nesting of arrays and maps either way (the daemon's decoder stops
--- near 1024 too). Deeper values are refused rather than overflowing the stack.
local MAX_DEPTH = 1000
M.MAX_DEPTH = MAX_DEPTH

-- Markers ------------------------------------------------------------------

--- Stands for MessagePack nil where Lua cannot hold nil: inside arrays (so
--- they keep their length) and as a map key. Encodes as nil.
local null = setmetatable({}, {
  __name = "hearth.null",
  __tostring = function() return "hearth.null" end,
  __newindex = function() error("hearth.null is read-only", 2) end,
  __metatable = false, -- nobody can replace it
})
M.null = null

--- Metatable marking a table as an array (so {} can be an empty array).
local array_mt = { __name = "hearth.array" }
M.array_mt = array_mt

--- Metatable of hearth.bin values: { data = <string> }, always sent as bin.
local bin_mt = { __name = "hearth.bin" }
M.bin_mt = bin_mt

--- Metatable of hearth.ext values: { type = <-128..127>, data = <string> }.
local ext_mt = { __name = "hearth.ext" }
M.ext_mt = ext_mt

--- Mark `t` (default: a new table) as an array and return it. Its elements
--- are t[1] .. t[#t]; put hearth.null where a nil belongs.
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

--- True if `t` is a table marked as an array (every decoded array is).
function M.is_array(t)
  return type(t) == "table" and getmetatable(t) == array_mt
end

--- Wrap a string so that it is sent as MessagePack bin even if it is UTF-8.
function M.bin(s)
  if type(s) ~= "string" then
    error("hearth.bin expects a string, got " .. type(s), 2)
  end
  return setmetatable({ data = s }, bin_mt)
end

--- An extension value (MessagePack ext): a type from -128 to 127 and bytes.
function M.ext(ext_type, data)
  if math_type(ext_type) ~= "integer" or ext_type < -128 or ext_type > 127 then
    error("hearth.ext type must be an integer from -128 to 127", 2)
  end
  if type(data) ~= "string" then
    error("hearth.ext data must be a string, got " .. type(data), 2)
  end
  return setmetatable({ type = ext_type, data = data }, ext_mt)
end

--- Metatable of hearth.uint64 values: { bits = <integer> }, an unsigned
--- 64-bit integer above math.maxinteger, which no Lua integer holds. `bits`
--- is the same 64 bits read as a signed integer; the value encodes back to
--- exactly the uint64 it was decoded from. tostring() gives its decimal.
local uint64_mt = {
  __name = "hearth.uint64",
  __tostring = function(u) return string.format("%u", u.bits) end,
  __eq = function(a, b) return a.bits == b.bits end,
}
M.uint64_mt = uint64_mt

--- A uint64 from its 64 bits (as a signed Lua integer).
function M.uint64(bits)
  if math_type(bits) ~= "integer" then
    error("hearth.uint64 expects an integer, got " .. type(bits), 2)
  end
  return setmetatable({ bits = bits }, uint64_mt)
end

-- Encoder ------------------------------------------------------------------

-- State of the encode in progress: the pieces, their count, the nesting.
-- (Encoding calls no user code, so one encode cannot start inside another.)
local buf, n, depth

local MAX_LEN = 0xffffffff

-- One-byte encodings of the fixints -32..127, by value.
local FIXINT = {}
for v = -32, 127 do FIXINT[v] = char(v & 0xff) end

local function put_int(v)
  n = n + 1
  local fix = FIXINT[v]
  if fix then buf[n] = fix
  elseif v >= 0 then
    if v < 0x100 then buf[n] = pack(">BB", 0xcc, v)
    elseif v < 0x10000 then buf[n] = pack(">BI2", 0xcd, v)
    elseif v < 0x100000000 then buf[n] = pack(">BI4", 0xce, v)
    else buf[n] = pack(">Bi8", 0xcf, v) -- same bytes as uint64 for v >= 0
    end
  else
    if v >= -0x80 then buf[n] = pack(">Bi1", 0xd0, v)
    elseif v >= -0x8000 then buf[n] = pack(">Bi2", 0xd1, v)
    elseif v >= -0x80000000 then buf[n] = pack(">Bi4", 0xd2, v)
    else buf[n] = pack(">Bi8", 0xd3, v)
    end
  end
end

-- A header with an 8-, 16- or 32-bit length (type bytes t8, t16, t32),
-- then the bytes themselves: bin, and str of 32 bytes or more.
local function put_sized(s, t8, t16, t32)
  local len = #s
  n = n + 1
  if len < 0x100 then buf[n] = pack(">BB", t8, len)
  elseif len < 0x10000 then buf[n] = pack(">BI2", t16, len)
  elseif len <= MAX_LEN then buf[n] = pack(">BI4", t32, len)
  else error("a string of more than 4 GiB", 0)
  end
  n = n + 1
  buf[n] = s
end

local function put_bin(s)
  put_sized(s, 0xc4, 0xc5, 0xc6)
end

-- Whole encodings (header and bytes) of short UTF-8 strings seen lately:
-- map keys repeat, and one lookup is cheaper than checking and framing them.
local short_cache, short_count = {}, 0

local function put_str(s)
  local piece = short_cache[s]
  if piece then
    n = n + 1
    buf[n] = piece
    return
  end
  local len = #s
  if not utf8_len(s) then return put_bin(s) end -- not UTF-8: bytes
  if len < 32 then
    piece = char(0xa0 + len) .. s
    if short_count >= 4096 then short_cache, short_count = {}, 0 end
    short_cache[s] = piece
    short_count = short_count + 1
    n = n + 1
    buf[n] = piece
    return
  end
  put_sized(s, 0xd9, 0xda, 0xdb)
end

local function put_ext(e)
  local t, data = e.type, e.data
  if math_type(t) ~= "integer" or t < -128 or t > 127 or type(data) ~= "string" then
    error("a malformed hearth.ext", 0)
  end
  local len = #data
  n = n + 1
  if len == 1 then buf[n] = pack(">Bb", 0xd4, t)
  elseif len == 2 then buf[n] = pack(">Bb", 0xd5, t)
  elseif len == 4 then buf[n] = pack(">Bb", 0xd6, t)
  elseif len == 8 then buf[n] = pack(">Bb", 0xd7, t)
  elseif len == 16 then buf[n] = pack(">Bb", 0xd8, t)
  elseif len < 0x100 then buf[n] = pack(">BBb", 0xc7, len, t)
  elseif len < 0x10000 then buf[n] = pack(">BI2b", 0xc8, len, t)
  elseif len <= MAX_LEN then buf[n] = pack(">BI4b", 0xc9, len, t)
  else error("a string of more than 4 GiB", 0)
  end
  n = n + 1
  buf[n] = data
end

local function container_header(len, fix, h16, h32)
  if len < 16 then return char(fix + len)
  elseif len < 0x10000 then return pack(">BI2", h16, len)
  elseif len <= MAX_LEN then return pack(">BI4", h32, len)
  end
  error("a table with more than 2^32-1 entries", 0)
end

local put_value -- forward declaration (recursive)

local function put_array(t, len)
  n = n + 1
  buf[n] = container_header(len, 0x90, 0xdc, 0xdd)
  for i = 1, len do
    put_value(t[i]) -- marked arrays hold hearth.null (or nil) in their gaps
  end
end

local function put_map(t)
  n = n + 1
  local at, count = n, 0 -- the header goes here once the entries are counted
  for k, v in next, t do
    put_value(k)
    put_value(v)
    count = count + 1
  end
  buf[at] = container_header(count, 0x80, 0xde, 0xdf)
end

local function put_table(t)
  depth = depth + 1
  if depth > MAX_DEPTH then
    error("tables nested deeper than " .. MAX_DEPTH .. " levels", 0)
  end
  local mt = getmetatable(t)
  if mt == array_mt then
    put_array(t, rawlen(t))
  elseif mt == bin_mt then
    if type(t.data) ~= "string" then error("a malformed hearth.bin", 0) end
    put_bin(t.data)
  elseif mt == ext_mt then
    put_ext(t)
  elseif mt == uint64_mt then
    n = n + 1
    buf[n] = pack(">Bi8", 0xcf, t.bits)
  else
    -- An array if its keys are exactly 1..n with n >= 1; else a map.
    local len = rawlen(t)
    local is_array = false
    if len > 0 then
      local count = 0
      is_array = true
      for k in next, t do
        if math_type(k) ~= "integer" or k < 1 or k > len then
          is_array = false
          break
        end
        count = count + 1
      end
      is_array = is_array and count == len
    end
    if is_array then put_array(t, len) else put_map(t) end
  end
  depth = depth - 1
end

function put_value(v)
  local tv = type(v)
  if tv == "string" then
    put_str(v)
  elseif tv == "number" then
    if math_type(v) == "integer" then
      put_int(v)
    else
      n = n + 1
      buf[n] = pack(">Bd", 0xcb, v)
    end
  elseif tv == "table" then
    if v == null then
      n = n + 1
      buf[n] = "\xc0"
    else
      put_table(v)
    end
  elseif tv == "boolean" then
    n = n + 1
    buf[n] = v and "\xc3" or "\xc2"
  elseif v == nil then
    n = n + 1
    buf[n] = "\xc0"
  else
    error("a " .. tv, 0)
  end
end

-- Encode a map whose keys (strings) come in the order of the list `keys`.
local function put_ordered(t, keys)
  local count = #keys
  n = n + 1
  buf[n] = container_header(count, 0x80, 0xde, 0xdf)
  for i = 1, count do
    local k = keys[i]
    put_str(k)
    put_value(t[k])
  end
end

-- Where in `v` is the first thing that cannot be encoded? Only run after an
-- encode failed, to make its message useful: returns a path and a reason.
local function find_unencodable(v, path, seen, level)
  local tv = type(v)
  if tv == "function" or tv == "userdata" or tv == "thread" then
    return path, "a " .. tv
  elseif tv == "string" then
    if #v > MAX_LEN then return path, "a string of more than 4 GiB" end
  elseif tv == "table" and v ~= null then
    if seen[v] then return path, "a table that contains itself" end
    if level >= MAX_DEPTH then -- level 0 is the first table
      return path, "tables nested deeper than " .. MAX_DEPTH .. " levels"
    end
    local mt = getmetatable(v)
    if mt == bin_mt or mt == ext_mt or mt == uint64_mt then return nil end
    seen[v] = true
    for k, item in next, v do
      local name
      if type(k) == "string" and k:match("^[%a_][%w_]*$") then
        name = path == "" and k or path .. "." .. k
      elseif type(k) == "string" then
        name = path .. "[" .. string.format("%q", k) .. "]"
      else
        name = path .. "[" .. tostring(k) .. "]"
      end
      local p, why = find_unencodable(k, name .. " (a key)", seen, level + 1)
      if p then return p, why end
      p, why = find_unencodable(item, name, seen, level + 1)
      if p then return p, why end
    end
    seen[v] = nil
  end
  return nil
end

-- Run one encode (`put` applied to a, b) and return the bytes, or raise an
-- error saying what could not be encoded and where.
local function run_encode(put, a, b, root)
  buf, n, depth = {}, 0, 0
  local ok, err = pcall(put, a, b)
  local out = ok and concat(buf, "", 1, n) or nil
  buf = nil
  if ok then return out end
  local path, why = find_unencodable(a, root, {}, 0)
  if path then
    if #path > 120 then path = path:sub(1, 60) .. "..." .. path:sub(-50) end
    error("cannot encode " .. why .. " at " .. path, 0)
  end
  error("cannot encode " .. tostring(err) .. (root ~= "" and (" in " .. root) or ""), 0)
end

--- Encode one Lua value as MessagePack bytes. Raises an error (a string
--- "cannot encode a function at value.cb", ...) for values that cannot go.
function M.encode(v)
  return run_encode(put_value, v, nil, "value")
end

--- Encode the table `t` as a map whose keys are `keys` (a list of strings),
--- in that order; missing fields are nil. Protocol messages use this, since
--- the order of a Lua table's keys is unspecified.
function M.encode_ordered(t, keys)
  return run_encode(put_ordered, t, keys, "")
end

-- Decoder ------------------------------------------------------------------

local ddepth -- nesting of the decode in progress

-- Take `len` bytes at `pos`; return them and the position after them.
local function take(s, pos, len)
  local last = pos + len - 1
  if last > #s then error("truncated data", 0) end
  return sub(s, pos, last), last + 1
end

local decode_value -- forward declaration (recursive)

-- The containers' loops decode fixints and fixstrs (most keys and many
-- values) inline, saving a call each; decode_value does the rest.
local function decode_array(s, pos, len)
  ddepth = ddepth + 1
  if ddepth > MAX_DEPTH then error("nested deeper than " .. MAX_DEPTH .. " levels", 0) end
  local t, size, v, c = {}, #s, nil, nil
  for i = 1, len do
    c = byte(s, pos)
    if c and c < 0x80 then
      v, pos = c, pos + 1
    elseif c and c >= 0xa0 and c < 0xc0 and pos + c - 0xa0 <= size then
      v, pos = sub(s, pos + 1, pos + c - 0xa0), pos + c - 0x9f
    else
      v, pos = decode_value(s, pos)
      if v == nil then v = null end
    end
    t[i] = v
  end
  ddepth = ddepth - 1
  return setmetatable(t, array_mt), pos
end

local function decode_map(s, pos, len)
  ddepth = ddepth + 1
  if ddepth > MAX_DEPTH then error("nested deeper than " .. MAX_DEPTH .. " levels", 0) end
  local t, size, k, v, c = {}, #s, nil, nil, nil
  for _ = 1, len do
    c = byte(s, pos)
    if c and c >= 0xa0 and c < 0xc0 and pos + c - 0xa0 <= size then
      k, pos = sub(s, pos + 1, pos + c - 0xa0), pos + c - 0x9f
    else
      k, pos = decode_value(s, pos)
      if k == nil then
        k = null
      elseif k ~= k then
        error("a map key is NaN, which a Lua table cannot hold", 0)
      end
    end
    c = byte(s, pos)
    if c and c < 0x80 then
      v, pos = c, pos + 1
    elseif c and c >= 0xa0 and c < 0xc0 and pos + c - 0xa0 <= size then
      v, pos = sub(s, pos + 1, pos + c - 0xa0), pos + c - 0x9f
    else
      v, pos = decode_value(s, pos)
    end
    t[k] = v -- a nil value leaves the key out
  end
  ddepth = ddepth - 1
  return t, pos
end

local function decode_ext(s, pos, len, ext_type)
  local data
  data, pos = take(s, pos, len)
  return setmetatable({ type = ext_type, data = data }, ext_mt), pos
end

-- Decoders of the bytes 0xc0..0xdf, indexed by that byte; each gets the
-- position of the byte and returns the value and the position after it.
local dec = {}
dec[0xc0] = function(_, pos) return nil, pos + 1 end
dec[0xc1] = function() error("0xc1 is not a MessagePack value", 0) end
dec[0xc2] = function(_, pos) return false, pos + 1 end
dec[0xc3] = function(_, pos) return true, pos + 1 end
dec[0xc4] = function(s, pos) return unpack(">s1", s, pos + 1) end -- bin 8
dec[0xc5] = function(s, pos) return unpack(">s2", s, pos + 1) end -- bin 16
dec[0xc6] = function(s, pos) return unpack(">s4", s, pos + 1) end -- bin 32
dec[0xc7] = function(s, pos) -- ext 8
  local len, t, p = unpack(">Bb", s, pos + 1)
  return decode_ext(s, p, len, t)
end
dec[0xc8] = function(s, pos) -- ext 16
  local len, t, p = unpack(">I2b", s, pos + 1)
  return decode_ext(s, p, len, t)
end
dec[0xc9] = function(s, pos) -- ext 32
  local len, t, p = unpack(">I4b", s, pos + 1)
  return decode_ext(s, p, len, t)
end
dec[0xca] = function(s, pos) return unpack(">f", s, pos + 1) end
dec[0xcb] = function(s, pos) return unpack(">d", s, pos + 1) end
dec[0xcc] = function(s, pos) return unpack(">B", s, pos + 1) end
dec[0xcd] = function(s, pos) return unpack(">I2", s, pos + 1) end
dec[0xce] = function(s, pos) return unpack(">I4", s, pos + 1) end
dec[0xcf] = function(s, pos)
  local v, p = unpack(">i8", s, pos + 1)
  if v < 0 then v = M.uint64(v) end -- above 2^63-1: no Lua integer holds it
  return v, p
end
dec[0xd0] = function(s, pos) return unpack(">i1", s, pos + 1) end
dec[0xd1] = function(s, pos) return unpack(">i2", s, pos + 1) end
dec[0xd2] = function(s, pos) return unpack(">i4", s, pos + 1) end
dec[0xd3] = function(s, pos) return unpack(">i8", s, pos + 1) end
for code, len in pairs({ [0xd4] = 1, [0xd5] = 2, [0xd6] = 4, [0xd7] = 8, [0xd8] = 16 }) do
  dec[code] = function(s, pos) -- fixext
    local t, p = unpack(">b", s, pos + 1)
    return decode_ext(s, p, len, t)
  end
end
dec[0xd9] = function(s, pos) return unpack(">s1", s, pos + 1) end -- str 8
dec[0xda] = function(s, pos) return unpack(">s2", s, pos + 1) end -- str 16
dec[0xdb] = function(s, pos) return unpack(">s4", s, pos + 1) end -- str 32
dec[0xdc] = function(s, pos)
  local len, p = unpack(">I2", s, pos + 1)
  return decode_array(s, p, len)
end
dec[0xdd] = function(s, pos)
  local len, p = unpack(">I4", s, pos + 1)
  return decode_array(s, p, len)
end
dec[0xde] = function(s, pos)
  local len, p = unpack(">I2", s, pos + 1)
  return decode_map(s, p, len)
end
dec[0xdf] = function(s, pos)
  local len, p = unpack(">I4", s, pos + 1)
  return decode_map(s, p, len)
end

function decode_value(s, pos)
  local c = byte(s, pos)
  if c == nil then error("truncated data", 0) end
  if c < 0x80 then return c, pos + 1 -- positive fixint
  elseif c >= 0xe0 then return c - 0x100, pos + 1 -- negative fixint
  elseif c < 0x90 then return decode_map(s, pos + 1, c - 0x80)
  elseif c < 0xa0 then return decode_array(s, pos + 1, c - 0x90)
  elseif c < 0xc0 then return take(s, pos + 1, c - 0xa0) -- fixstr
  end
  return dec[c](s, pos)
end

--- Decode bytes holding exactly one MessagePack value. Raises an error
--- ("malformed MessagePack: ...") on bad or truncated input or trailing bytes.
function M.decode(s)
  if type(s) ~= "string" then
    error("hearth.decode expects a string, got " .. type(s), 2)
  end
  ddepth = 0
  local ok, v, pos = pcall(decode_value, s, 1)
  if not ok then
    local why = tostring(v)
    if why:find("data string too short", 1, true) then why = "truncated data" end
    error("malformed MessagePack: " .. why, 2)
  end
  if pos ~= #s + 1 then
    error("malformed MessagePack: " .. (#s + 1 - pos) .. " bytes after the value", 2)
  end
  return v
end

return M
