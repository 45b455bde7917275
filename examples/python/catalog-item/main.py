"""A data source: the details of one program, for {"id": 7} (or "7")."""

import json
import os

with open(os.path.join(os.path.dirname(__file__), "catalog.json"), encoding="utf-8") as f:
    CATALOG = json.load(f)


def handler(event, context):
    program_id = event.get("id") if isinstance(event, dict) else None
    if isinstance(program_id, bool) or not isinstance(program_id, (int, str)):
        raise ValueError('pass {"id": <program id>}, got %r' % (event,))
    details = CATALOG.get(str(program_id))
    if details is None:
        raise KeyError("no program %s in the catalogue; known ids: %s" % (program_id, ", ".join(sorted(CATALOG, key=int))))
    return {"id": int(program_id), **details}
