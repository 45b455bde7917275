-- Reads countries.csv, shipped next to this file, once at load time.
local M = {}

local countries = {}
do
  local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
  for line in io.lines(here .. "countries.csv") do
    local code, name, capital, currency = line:match("^(%u%u),([^,]+),([^,]+),([^,]+)$")
    if code then
      countries[code] = { name = name, capital = capital, currency = currency }
    end
  end
end

function M.handler(event, context)
  local code = string.upper(tostring(event.code or ""))
  local country = countries[code]
  if not country then
    error({ kind = "KeyError", message = "unknown country code '" .. code .. "'" })
  end
  return { code = code, name = country.name, capital = country.capital, currency = country.currency }
end

return M
