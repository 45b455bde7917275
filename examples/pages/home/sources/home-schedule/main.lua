-- home-schedule: a data source, what the live channels show now and next
-- (schedule.tsv: channel_id, start, end, program_id; one day, UTC).
--
--   {"at": "20:15"} -> {"at": "20:15", "items": [
--                        {"channel_id": "c1", "status": "now",  "program_id": "p02", "start": "20:00", "end": "21:00"},
--                        {"channel_id": "c1", "status": "next", "program_id": "p18", "start": "21:00", "end": "22:00"}, ...]}
--   {}              -> the same for the current time (UTC)
--   {"at": "25:70"} -> BAD_TIME (400)
--
-- A channel off the air (Hearth Kids, 19:00 to 06:00) has only a "next";
-- after a channel's last slot, "next" is its first slot of tomorrow.

local hearth = require("hearth")

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/") or "."

-- "HH:MM" -> minutes since midnight, or nil when it is not a time of day.
local function minutes(text)
  local h, m = tostring(text):match("^(%d%d):(%d%d)$")
  h, m = tonumber(h), tonumber(m)
  if not h or m > 59 or h > 24 or (h == 24 and m > 0) then return nil end
  return h * 60 + m
end

local CHANNELS = {} -- channel ids, in the file's order
local SLOTS = {}    -- channel id -> its slots, in time order
for line in io.lines(HERE .. "/schedule.tsv") do
  local channel, start, stop, program = line:match("^(c%d+)\t(%S+)\t(%S+)\t(p%d+)$") -- skips the header
  if channel then
    if not SLOTS[channel] then
      SLOTS[channel] = {}
      CHANNELS[#CHANNELS + 1] = channel
    end
    table.insert(SLOTS[channel], { program_id = program, start = start, ["end"] = stop, from = minutes(start), to = minutes(stop) })
  end
end

local function entry(channel, status, slot)
  return { channel_id = channel, status = status, program_id = slot.program_id, start = slot.start, ["end"] = slot["end"] }
end

local M = {}

function M.handler(event)
  local at = event.at or os.date("!%H:%M")
  local now = minutes(at)
  if not now or now == 24 * 60 then
    error({ code = "BAD_TIME", message = ('"at" must be a time of day from 00:00 to 23:59, not %q'):format(tostring(at)) })
  end
  local items = hearth.array()
  for _, channel in ipairs(CHANNELS) do
    local slots, next_slot = SLOTS[channel], nil
    for _, slot in ipairs(slots) do
      if slot.from <= now and now < slot.to then
        items[#items + 1] = entry(channel, "now", slot)
      elseif slot.from > now then
        next_slot = slot
        break
      end
    end
    items[#items + 1] = entry(channel, "next", next_slot or slots[1]) -- nothing later today: tomorrow's first
  end
  return { at = at, items = items }
end

return M
