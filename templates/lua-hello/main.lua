-- {{name}}: greets whoever is named in the event.
--
--   {"name": "Ada"} -> {"greeting": "Hello, Ada!"}

local M = {}

function M.handler(event)
  local name = type(event) == "table" and event.name or nil
  return { greeting = "Hello, " .. tostring(name or "world") .. "!" }
end

return M
