-- home-badges: a field, the badges the page draws on program tiles.
--
-- Made from other fields, not from data sources: what is on now
-- (home-live-now's items), the "Trending now" row (home-trending's items)
-- and the "New releases" row (home-new-releases' items):
--
--   {"live": [{"now": {"program_id": "p02", ...}}], "trending": [{"id": "p23"}, {"id": "p02"}], "new": [{"id": "p02"}]}
--   -> {"p02": ["LIVE", "TRENDING", "NEW"], "p23": ["TRENDING"]}
--
-- Any of the three may be null (that field failed): its badge is just not given.

local hearth = require("hearth")

local M = {}

function M.handler(event)
  local badges = {} -- program id -> its badges, in the order LIVE, TRENDING, NEW
  local function give(id, badge)
    badges[id] = badges[id] or hearth.array()
    table.insert(badges[id], badge)
  end
  for _, channel in ipairs(event.live or {}) do
    if channel.now then give(channel.now.program_id, "LIVE") end
  end
  for _, tile in ipairs(event.trending or {}) do give(tile.id, "TRENDING") end
  for _, tile in ipairs(event.new or {}) do give(tile.id, "NEW") end
  return badges -- {} when there is none: an empty JSON object
end

return M
