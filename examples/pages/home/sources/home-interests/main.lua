-- home-interests: a data source, who a user is and the genres they like
-- (interests.tsv: user, name, genres).
--
--   {"user": "u1"}       -> {"user": "u1", "known": true, "name": "Maya", "genres": ["drama", "documentary"]}
--   {"user": "stranger"} -> {"user": "stranger", "known": false, "genres": <the "*" row's genres>}
--   {"user": null}       -> the same, without "user" (nobody signed in)

local hearth = require("hearth")

-- The function's own directory: Lua cannot chdir, so the working directory is the daemon's.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/") or "."

-- The columns of one tab-separated line (empty columns kept).
local function columns(line)
  local out = {}
  for col in (line .. "\t"):gmatch("([^\t]*)\t") do out[#out + 1] = col end
  return out
end

local USERS = {}
for line in io.lines(HERE .. "/interests.tsv") do
  if line ~= "" and line:sub(1, 1) ~= "#" then
    local col = columns(line)
    local genres = hearth.array()
    for genre in col[3]:gmatch("[^,]+") do genres[#genres + 1] = genre end
    USERS[col[1]] = { name = col[2] ~= "" and col[2] or nil, genres = genres }
  end
end

local M = {}

function M.handler(event)
  local user = event.user
  local row = USERS[user] -- nil for strangers (and for nil)
  local known = row ~= nil and user ~= "*"
  if not known then row = USERS["*"] end
  return {
    user = user,
    known = known,
    name = known and row.name or nil,
    genres = hearth.array({ table.unpack(row.genres) }), -- a copy: callers cannot change ours
  }
end

return M
