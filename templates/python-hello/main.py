"""{{name}}: greets whoever is named in the event.

    {"name": "Ada"} -> {"greeting": "Hello, Ada!"}
"""


def handler(event, context):
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    return {"greeting": "Hello, %s!" % name}
