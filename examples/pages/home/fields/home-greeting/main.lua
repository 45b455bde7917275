-- home-greeting: a field, the line at the top of the page.
--
-- From the user's name (home-interests), the time of day and the first
-- tile of the "Continue watching" row (home-continue), if any:
--
--   {"name": "Maya", "at": "20:15", "resume": {"title": "Harbour Lights", "link": "/watch/p02?t=34m"}}
--   -> {"text": "Good evening, Maya", "subtitle": "Pick up Harbour Lights where you left off",
--       "link": "/watch/p02?t=34m"}
--   {} -> {"text": "Good morning" (or afternoon, evening: now, UTC), "subtitle": "Find your next favourite"}

local M = {}

local function part_of_day(hour)
  if hour >= 5 and hour < 12 then return "morning" end
  if hour >= 12 and hour < 18 then return "afternoon" end
  return "evening"
end

function M.handler(event)
  local at = event.at or os.date("!%H:%M")
  local text = "Good " .. part_of_day(tonumber(at:match("^(%d+)")) or 0)
  if event.name then text = text .. ", " .. event.name end
  local resume = event.resume
  if resume then
    return { text = text, subtitle = "Pick up " .. resume.title .. " where you left off", link = resume.link }
  end
  return { text = text, subtitle = "Find your next favourite" }
end

return M
