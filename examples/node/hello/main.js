exports.handler = async (event, context) => ({
  greeting: `Hello, ${event.name ?? "world"}!`,
});
