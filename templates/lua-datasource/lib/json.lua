-- A small JSON decoder in plain Lua 5.4: json.decode(text) gives tables
-- for objects and arrays (arrays marked with hearth.array), strings,
-- numbers (integers stay integers), booleans, and hearth.null for null.
-- A malformed document raises an error naming the byte where it is wrong.

local hearth = require("hearth")

local json = {}

local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function fail(text, at, what)
  error(string.format("JSON: %s at byte %d (near %q)", what, at, text:sub(at, at + 10)), 0)
end

local function skip(text, at)
  return text:find("[^ \t\r\n]", at) or #text + 1
end

local value -- defined below: value(text, at) -> decoded, next position

local function string_at(text, at)
  local out, i = {}, at + 1
  while true do
    local c = text:sub(i, i)
    if c == "" then fail(text, at, "unterminated string") end
    if c == '"' then return table.concat(out), i + 1 end
    if c == "\\" then
      local e = text:sub(i + 1, i + 1)
      if e == "u" then
        local hex = text:sub(i + 2, i + 5)
        if not hex:match("^%x%x%x%x$") then fail(text, i, "bad \\u escape") end
        local code = tonumber(hex, 16)
        i = i + 6
        if code >= 0xD800 and code <= 0xDBFF then -- a surrogate pair
          local low = text:match("^\\u(%x%x%x%x)", i)
          if not low then fail(text, i, "lone surrogate") end
          code = 0x10000 + (code - 0xD800) * 0x400 + (tonumber(low, 16) - 0xDC00)
          i = i + 6
        end
        out[#out + 1] = utf8.char(code)
      elseif ESCAPES[e] then
        out[#out + 1] = ESCAPES[e]
        i = i + 2
      else
        fail(text, i, "bad escape")
      end
    elseif c:byte() < 32 then
      fail(text, i, "control character in a string")
    else
      local j = text:find('["\\%c]', i) or #text + 1
      out[#out + 1] = text:sub(i, j - 1)
      i = j
    end
  end
end

local function number_at(text, at)
  local s = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", at)
  local n = s and tonumber(s)
  if not n then fail(text, at, "bad number") end
  return math.tointeger(n) or n, at + #s
end

local function array_at(text, at)
  local out, i = {}, skip(text, at + 1)
  if text:sub(i, i) == "]" then return hearth.array(out), i + 1 end
  while true do
    out[#out + 1], i = value(text, i)
    i = skip(text, i)
    local c = text:sub(i, i)
    if c == "]" then return hearth.array(out), i + 1 end
    if c ~= "," then fail(text, i, "expected , or ]") end
    i = skip(text, i + 1)
  end
end

local function object_at(text, at)
  local out, i = {}, skip(text, at + 1)
  if text:sub(i, i) == "}" then return out, i + 1 end
  while true do
    if text:sub(i, i) ~= '"' then fail(text, i, "expected a key in quotes") end
    local key
    key, i = string_at(text, i)
    i = skip(text, i)
    if text:sub(i, i) ~= ":" then fail(text, i, "expected :") end
    out[key], i = value(text, skip(text, i + 1))
    i = skip(text, i)
    local c = text:sub(i, i)
    if c == "}" then return out, i + 1 end
    if c ~= "," then fail(text, i, "expected , or }") end
    i = skip(text, i + 1)
  end
end

local WORDS = { ["true"] = true, ["false"] = false }

value = function(text, at)
  local c = text:sub(at, at)
  if c == "{" then return object_at(text, at) end
  if c == "[" then return array_at(text, at) end
  if c == '"' then return string_at(text, at) end
  if c == "-" or c:match("%d") then return number_at(text, at) end
  for word, v in pairs(WORDS) do
    if text:sub(at, at + #word - 1) == word then return v, at + #word end
  end
  if text:sub(at, at + 3) == "null" then return hearth.null, at + 4 end
  fail(text, at, "unexpected character")
end

--- Decode a JSON document.
function json.decode(text)
  local decoded, at = value(text, skip(text, 1))
  if skip(text, at) <= #text then fail(text, at, "text after the document") end
  return decoded
end

return json
