-- {{name}}: a data source. It reads data/programs.json, shipped with the
-- code, once per worker, and returns the programs that match its input:
--
--   {}                            -> every program
--   {"genre": "news"}             -> the news programs
--   {"genre": "news", "limit": 2} -> the first two of them
--
-- hearth.toml's [input] and [output] JSON Schemas say the same for callers.
-- Lua has no JSON in its standard library: lib/json.lua decodes the file.

local hearth = require("hearth")
local json = require("lib.json")

-- The function's own directory (pure Lua cannot change the working directory).
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/") or "."

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local PROGRAMS = json.decode(read(HERE .. "/data/programs.json"))

local M = {}

function M.handler(event)
  event = type(event) == "table" and event or {}
  local genre, limit = event.genre, event.limit
  if genre ~= nil and type(genre) ~= "string" then
    error({ kind = "TypeError", message = '{{name}}: "genre" must be a string such as "news", not a ' .. type(genre) })
  end
  if limit ~= nil and (math.type(limit) ~= "integer" or limit < 0) then
    error({ kind = "TypeError", message = '{{name}}: "limit" must be a whole number of 0 or more, not ' .. tostring(limit) })
  end
  local items = {}
  for _, p in ipairs(PROGRAMS) do
    if limit ~= nil and #items >= limit then break end
    if genre == nil or p.genre == genre then
      items[#items + 1] = { id = p.id, title = p.title, genre = p.genre, duration_min = p.duration_min }
    end
  end
  return hearth.array(items) -- an array even when empty
end

return M
