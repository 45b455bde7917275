-- A data source: the genres a user likes.
--
--   {"user": "u1"}       -> {"user": "u1", "genres": ["news", "documentary"]}
--   {"user": "stranger"} -> {"user": "stranger", "genres": <the default list>}
--   {}                   -> an error (kind ValueError): "user" is missing

local M = {}

local INTERESTS = {
  u1 = { "news", "documentary" },
  u2 = { "sport" },
  u3 = { "kids", "drama" },
  u4 = { "drama", "documentary", "news" },
}

-- What users we know nothing about get.
M.DEFAULT = { "news", "drama" }

function M.handler(event)
  local user = type(event) == "table" and event.user or nil
  if type(user) ~= "string" or user == "" then
    error({
      kind = "ValueError",
      message = 'user-interests needs "user", a non-empty string such as {"user": "u1"}; got '
        .. (user == nil and "no user" or ("a " .. type(user))),
    })
  end
  local genres = {}
  for i, genre in ipairs(INTERESTS[user] or M.DEFAULT) do genres[i] = genre end
  return { user = user, genres = genres }
end

return M
