-- home-rankings: a data source, the most watched programs (rankings.tsv:
-- program_id, views in the last 24 hours, views in the last 7 days).
--
--   {"period": "24h", "limit": 3} -> {"period": "24h", "items": [{"rank": 1, "program_id": "p23", "views": 412000}, ...]}
--   {"period": "7d"}              -> every ranked program, by its views of the week
--
-- The period defaults to 24h; [input] refuses any other than 24h and 7d.

local hearth = require("hearth")

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/") or "."

local ROWS = {}
for line in io.lines(HERE .. "/rankings.tsv") do
  local id, day, week = line:match("^(p%d+)\t(%d+)\t(%d+)$") -- skips the header
  if id then ROWS[#ROWS + 1] = { program_id = id, ["24h"] = math.tointeger(day), ["7d"] = math.tointeger(week) } end
end

local M = {}

function M.handler(event)
  local period = event.period or "24h"
  local sorted = { table.unpack(ROWS) }
  table.sort(sorted, function(a, b)
    if a[period] ~= b[period] then return a[period] > b[period] end
    return a.program_id < b.program_id -- a stable order for ties
  end)
  local items = hearth.array()
  for rank, row in ipairs(sorted) do
    if event.limit and rank > event.limit then break end
    items[rank] = { rank = rank, program_id = row.program_id, views = row[period] }
  end
  return { period = period, items = items }
end

return M
