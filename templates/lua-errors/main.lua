-- {{name}}: looks a program up by id.
--
--   {"id": "p01"} -> {"id": "p01", "title": "Morning Headlines", ...}
--   {"id": "p42"} -> NOT_FOUND: "no program p42" (404, declared in hearth.toml)
--   {}            -> MISSING_ID (400)
--
-- An error code is raised by name: error({code = "...", message = "..."});
-- hearth answers it with the status its [errors.CODE] declares.

local PROGRAMS = {
  p01 = { title = "Morning Headlines", genre = "news" },
  p02 = { title = "Match of the Week", genre = "sport" },
  p03 = { title = "The Lighthouse Keeper", genre = "drama" },
}

local M = {}

function M.handler(event)
  local id = type(event) == "table" and event.id or nil
  if type(id) ~= "string" or id == "" then
    error({ code = "MISSING_ID", message = 'give the program\'s id, for example {"id": "p01"}' })
  end
  local program = PROGRAMS[id]
  if program == nil then
    error({ code = "NOT_FOUND", message = "no program " .. id })
  end
  return { id = id, title = program.title, genre = program.genre }
end

return M
