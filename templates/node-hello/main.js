// {{name}}: greets whoever is named in the event.
//
//   {"name": "Ada"} -> {"greeting": "Hello, Ada!"}

exports.handler = async (event) => ({ greeting: `Hello, ${event?.name ?? 'world'}!` });
