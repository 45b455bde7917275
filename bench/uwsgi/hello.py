"""WSGI equivalent of examples/python/hello, used as the uWSGI baseline.

POST a JSON body such as {"name":"Ada"}; the reply is {"greeting":"Hello, Ada!"}.
"""
import json


def application(environ, start_response):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(length) if length > 0 else b""
    try:
        event = json.loads(raw) if raw else {}
    except ValueError:
        event = {}
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    body = json.dumps({"greeting": f"Hello, {name}!"}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
