"""A data source: the details of one program, for {"id": 7} (or "7").

Its hearth.toml declares the input (hearth refuses an event without an id
before this runs), the output, and the NOT_FOUND error it raises.
"""

import json
import os

import hearth

with open(os.path.join(os.path.dirname(__file__), "catalog.json"), encoding="utf-8") as f:
    CATALOG = json.load(f)


def handler(event, context):
    program_id = event["id"]
    details = CATALOG.get(str(program_id))
    if details is None:
        raise hearth.Error(
            "NOT_FOUND",
            "no program %s in the catalogue; known ids: %s" % (program_id, ", ".join(sorted(CATALOG, key=int))),
        )
    return {"id": int(program_id), **details}
