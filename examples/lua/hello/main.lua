local M = {}

function M.handler(event, context)
  return { greeting = "Hello, " .. (event.name or "world") .. "!" }
end

return M
