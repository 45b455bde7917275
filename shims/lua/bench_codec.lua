--[[ Speed of the pure-Lua MessagePack codec (hearth.lua) on the frames a
worker handles. Run from anywhere: lua5.4 shims/lua/bench_codec.lua
Times are CPU time (os.clock), best of 5 runs.
]]

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = HERE .. "/?.lua;" .. package.path
local worker = require("hearth_worker")
local hearth = require("hearth")

local function best_of(runs, fn)
  local best = math.huge
  for _ = 1, runs do
    collectgarbage("collect")
    local started = os.clock()
    fn()
    best = math.min(best, os.clock() - started)
  end
  return best
end

local function report(what, bytes, count, encode_s, decode_s)
  local mib = bytes * count / (1024 * 1024)
  print(("%-34s %9d B  encode %8.2f us (%7.1f MiB/s)  decode %8.2f us (%7.1f MiB/s)  both %8.2f us")
    :format(what, bytes, encode_s / count * 1e6, mib / encode_s, decode_s / count * 1e6, mib / decode_s,
      (encode_s + decode_s) / count * 1e6))
end

local function bench(what, message, count)
  local frame = worker.encode_frame(message)
  local body = frame:sub(5)
  local encode_s = best_of(5, function()
    for _ = 1, count do worker.frame_parts(message) end
  end)
  local decode_s = best_of(5, function()
    for _ = 1, count do worker.decode_body(body) end
  end)
  report(what, #frame, count, encode_s, decode_s)
end

print(_VERSION .. ", " .. (jit and "LuaJIT" or "PUC Lua"))

bench("small invoke frame", {
  t = "invoke", id = "5f3a000000000001", deadline_ms = 1800000000000, payload = { name = "Ada" },
}, 200000)

bench("small result frame", {
  t = "result", id = "5f3a000000000001", value = { greeting = "Hello, Ada!" },
}, 200000)

local text = ("héllo wörld ☃ "):rep(8 * 1024 * 1024 // 16 + 1):sub(1, 8 * 1024 * 1024)
bench("8 MiB string payload", { t = "invoke", id = "big", deadline_ms = 1800000000000, payload = text }, 20)

local bytes = {}
for i = 1, 8 * 1024 do bytes[i] = string.char((i * 7919) % 256):rep(1024) end
bench("8 MiB binary payload", {
  t = "invoke", id = "blob", deadline_ms = 1800000000000, payload = table.concat(bytes),
}, 20)

-- ~8 MiB of JSON-like records: what a decoded HTTP body looks like.
local records = hearth.array()
local size = 0
local i = 0
while size < 8 * 1024 * 1024 do
  i = i + 1
  records[i] = {
    id = i, name = "user" .. i, email = "user" .. i .. "@example.com", score = i / 7,
    active = i % 2 == 0, tags = { "a", "bb", "ccc" }, address = { city = "Paris", zip = "75001" },
  }
  size = size + 110
end
local frame = worker.encode_frame({ t = "invoke", id = "recs", deadline_ms = 1, payload = records })
print(("(%d records)"):format(#records))
bench("8 MiB of records", { t = "invoke", id = "recs", deadline_ms = 1, payload = records }, 1)
assert(#frame > 0)
