-- home-live-now: a field, what every live channel shows now and next.
--
-- Joins the schedule (home-schedule's answer: its time and its "now" and
-- "next" slots) with the channels (home-channels' items) and the
-- catalogue (home-programs' items), and says how far along "now" is:
--
--   {"schedule": {"at": "20:15", "items": [{"channel_id": "c1", "status": "now", "program_id": "p02",
--                 "start": "20:00", "end": "21:00"}, ...]}, "channels": [...], "programs": [...]}
--   -> {"at": "20:15", "items": [{"channel_id": "c1", "channel": "Hearth One", "number": 1,
--        "now": {"program_id": "p02", "title": "Harbour Lights", "start": "20:00", "end": "21:00", "progress_pct": 25},
--        "next": {"program_id": "p18", "title": "The Inheritance", "start": "21:00"}}, ...]}
--
-- A channel off the air has no "now". schedule null (it failed): no items.

local hearth = require("hearth")

local function minutes(hhmm)
  local h, m = hhmm:match("^(%d+):(%d+)$")
  return tonumber(h) * 60 + tonumber(m)
end

local M = {}

function M.handler(event)
  local schedule = event.schedule or { items = {} }
  local titles, channels = {}, {}
  for _, p in ipairs(event.programs) do titles[p.id] = p.title end
  for _, c in ipairs(event.channels or {}) do channels[c.id] = c end

  local items, by_channel = hearth.array(), {}
  for _, slot in ipairs(schedule.items) do
    local row = by_channel[slot.channel_id]
    if not row then
      local c = channels[slot.channel_id] or {}
      row = { channel_id = slot.channel_id, channel = c.name, number = c.number }
      by_channel[slot.channel_id] = row
      items[#items + 1] = row
    end
    local show = { program_id = slot.program_id, title = titles[slot.program_id] or "", start = slot.start }
    if slot.status == "now" then
      show["end"] = slot["end"]
      local from, to = minutes(slot.start), minutes(slot["end"])
      show.progress_pct = (minutes(schedule.at) - from) * 100 // (to - from)
      row.now = show
    else
      row.next = show
    end
  end
  return { at = schedule.at, items = items }
end

return M
