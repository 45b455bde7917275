"""home-programs: a data source, the catalogue of programs (programs.json).

    {"limit": 20}                  -> {"total": 30, "items": [the first 20 programs]}
    {"genre": "drama", "limit": 3} -> {"total": 5, "items": [3 drama programs]}
    {"ids": ["p02", "p05"]}        -> those two programs, in that order
    {"genre": "opera"}             -> UNKNOWN_GENRE (400)

Each item is {id, title, genre, duration_min, year, rating, channel_id,
thumbnail, synopsis}. "total" counts the matches before "limit".
"""

import json
import os

import hearth

HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(HERE, "programs.json"), encoding="utf-8") as f:
    PROGRAMS = json.load(f)

BY_ID = {p["id"]: p for p in PROGRAMS}
GENRES = sorted({p["genre"] for p in PROGRAMS})


def handler(event, context):
    genre = event.get("genre")
    if genre is not None and genre not in GENRES:
        raise hearth.Error("UNKNOWN_GENRE", "no genre %r; the genres are %s" % (genre, ", ".join(GENRES)))
    ids = event.get("ids")
    # Asked by id: in the order asked, unknown ids left out.
    matching = [BY_ID[i] for i in ids if i in BY_ID] if ids is not None else PROGRAMS
    matching = [p for p in matching if genre is None or p["genre"] == genre]
    limit = event.get("limit")
    items = matching if limit is None else matching[:limit]
    return {"total": len(matching), "items": [dict(p) for p in items]}
