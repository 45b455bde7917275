-- POST {"name":"Ada"} to /fn/f-0000 .. /fn/f-(N-1), rotating on every request.
-- N comes from the RR_COUNT environment variable (default 1000). Each wrk
-- thread starts at a different offset so threads do not move in lock-step.
local count = tonumber(os.getenv("RR_COUNT") or "1000")
local prefix = os.getenv("RR_PREFIX") or "/fn/f-"
local threads_seen = 0
local body = '{"name":"Ada"}'
local headers = { ["Content-Type"] = "application/json" }

function setup(thread)
  thread:set("offset", threads_seen)
  threads_seen = threads_seen + 1
end

local i = nil

function request()
  if i == nil then
    i = ((tonumber(offset) or 0) * 7919) % count
  end
  local path = string.format("%s%04d", prefix, i)
  i = (i + 1) % count
  return wrk.format("POST", path, headers, body)
end
