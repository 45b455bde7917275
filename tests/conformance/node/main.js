// Conformance fixture: the same behaviour in every runtime (see ../README.md).
const fs = require("fs");
const path = require("path");

exports.echo = (event) => event;

exports.echo_ctx = async (event, context) => ({
  event,
  function: context.functionName,
  request_id: context.requestId,
});

exports.fail = (event) => {
  throw new Error("boom: " + event.msg);
};

exports.fail_code = (event) => {
  const { HearthError } = require("hearth");
  throw new HearthError(event.code, event.msg);
};

exports.chatty = (event) => {
  for (let i = 0; i < event.lines; i++) console.log("out line " + i);
  process.stderr.write("err line\n");
  process.stdout.write("no newline at the end");
  return { ok: true, n: event.lines };
};

exports.read_file = () => fs.readFileSync(path.join(__dirname, "data.txt"), "utf8");
