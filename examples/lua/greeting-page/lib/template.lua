-- A small template module bundled with the function (Lua functions bring
-- their modules with them: hearth puts the version directory on package.path).
-- {{name}} inserts a value HTML-escaped; {{#list}}...{{/list}} repeats for
-- each item of a list, with {{.}} standing for the item.
local M = {}

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

function M.escape(s)
  return (tostring(s):gsub("[&<>\"']", ESCAPES))
end

local function fill(text, value)
  return (text:gsub("{{%s*([%w_.]+)%s*}}", function(key)
    if key == "." then return M.escape(value) end
    local v = type(value) == "table" and value[key] or nil
    return v == nil and "" or M.escape(v)
  end))
end

function M.render(text, data)
  text = text:gsub("{{#%s*([%w_]+)%s*}}(.-){{/%s*%1%s*}}", function(key, body)
    local out = {}
    for _, item in ipairs(data[key] or {}) do
      out[#out + 1] = fill(body, item)
    end
    return table.concat(out)
  end)
  return fill(text, data)
end

return M
