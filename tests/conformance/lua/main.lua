-- Conformance fixture: the same behaviour in every runtime (see ../README.md).
local M = {}

function M.echo(event)
  return event
end

function M.echo_ctx(event, context)
  return { event = event, ["function"] = context.function_name, request_id = context.request_id }
end

function M.fail(event)
  error("boom: " .. event.msg)
end

function M.fail_code(event)
  error({ code = event.code, message = event.msg })
end

function M.chatty(event)
  for i = 0, event.lines - 1 do
    print("out line " .. i)
  end
  io.stderr:write("err line\n")
  io.write("no newline at the end")
  return { ok = true, n = event.lines }
end

function M.read_file(event, context)
  local f = assert(io.open(context.path("data.txt"), "rb"))
  local text = f:read("a")
  f:close()
  return text
end

return M
