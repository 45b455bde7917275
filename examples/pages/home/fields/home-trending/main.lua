-- home-trending: a field, the "Trending now" row.
--
-- Joins the most watched programs (home-rankings' items, in rank order)
-- with the catalogue (home-programs' items):
--
--   {"rankings": [{"rank": 1, "program_id": "p23", "views": 412000}], "programs": [...], "limit": 10}
--   -> {"title": "Trending now", "items": [{"id": "p23", "title": "Derby Day", "rank": 1,
--        "views": 412000, "detail": "412K views", "link": "/watch/p23", ...}]}
--
-- A ranked id the catalogue does not have is skipped.

local hearth = require("hearth")

-- 950 -> "950 views", 96200 -> "96.2K views", 298500 -> "298K views", 1840000 -> "1.8M views"
local function views_text(n)
  local text
  if n >= 1000000 then
    text = ("%.1fM"):format(n / 1000000)
  elseif n >= 100000 then
    text = ("%dK"):format(n // 1000)
  elseif n >= 1000 then
    text = ("%.1fK"):format(n / 1000)
  else
    text = tostring(n)
  end
  return (text:gsub("%.0([KM])$", "%1")) .. " views" -- "2.0M" -> "2M"
end

local M = {}

function M.handler(event)
  local programs = {}
  for _, p in ipairs(event.programs) do programs[p.id] = p end
  local limit = event.limit or 10
  local items = hearth.array()
  for _, r in ipairs(event.rankings or {}) do
    local p = programs[r.program_id]
    if p and #items < limit then
      items[#items + 1] = {
        id = p.id, title = p.title, genre = p.genre, thumbnail = p.thumbnail,
        link = "/watch/" .. p.id, duration_min = p.duration_min,
        rank = r.rank, views = r.views, detail = views_text(r.views),
      }
    end
  end
  return { title = "Trending now", items = items }
end

return M
