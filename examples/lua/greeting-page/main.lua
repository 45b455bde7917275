local template = require("lib.template")

local M = {}

local page
do
  local f = assert(io.open("page.html", "rb")) -- the working directory is the version's own
  page = f:read("a")
  f:close()
end

function M.handler(event, context)
  return { html = template.render(page, { name = event.name or "world", items = event.items or {} }) }
end

return M
