"""{{name}}: a data source. It reads data/programs.json, shipped with the
code, once per worker, and returns the programs that match its input:

    {}                             -> every program
    {"genre": "news"}              -> the news programs
    {"genre": "news", "limit": 2}  -> the first two of them

hearth.toml's [input] and [output] JSON Schemas say the same for callers.
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(HERE, "data", "programs.json"), encoding="utf-8") as f:
    PROGRAMS = json.load(f)


def handler(event, context):
    event = event if isinstance(event, dict) else {}
    genre = event.get("genre")
    limit = event.get("limit")
    if genre is not None and not isinstance(genre, str):
        raise TypeError('{{name}}: "genre" must be a string such as "news", not %r' % (genre,))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise TypeError('{{name}}: "limit" must be a whole number of 0 or more, not %r' % (limit,))
    items = [dict(p) for p in PROGRAMS if genre is None or p["genre"] == genre]
    return items if limit is None else items[:limit]
