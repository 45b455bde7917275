-- {{name}}: a field of a page. It asks the data source {{datasource}} for
-- programs (a nested call: through the worker, never over HTTP) and maps
-- them to the row the page shows:
--
--   {"genre": "news"} -> {"field": "{{name}}", "title": "News",
--                         "items": [{"label": "Morning Headlines", "link": "/programs/p01", "detail": "30 min"}, ...]}
--
-- If the data source fails, the row is empty and "error" says why: one
-- broken source must not fail the whole page.

local hearth = require("hearth")

local SOURCE = "{{datasource}}"
local ROW_SIZE = 4

local M = {}

function M.handler(event, context)
  event = type(event) == "table" and event or {}
  local genre = type(event.genre) == "string" and event.genre ~= "" and event.genre or nil
  local row = {
    field = "{{name}}",
    title = genre and (genre:sub(1, 1):upper() .. genre:sub(2)) or "Programs",
    items = hearth.array(),
  }
  local programs, err = context.invoke(SOURCE, { genre = genre, limit = ROW_SIZE })
  if err then
    row.error = SOURCE .. ": " .. tostring(err.code)
    return row
  end
  for _, p in ipairs(type(programs) == "table" and programs or {}) do
    if type(p) == "table" and type(p.id) == "string" then
      row.items[#row.items + 1] = {
        label = tostring(p.title or ""),
        link = "/programs/" .. p.id,
        detail = tostring(p.duration_min or "?") .. " min",
      }
    end
  end
  return row
end

return M
