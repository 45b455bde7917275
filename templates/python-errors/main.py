"""{{name}}: looks a program up by id.

    {"id": "p01"} -> {"id": "p01", "title": "Morning Headlines", ...}
    {"id": "p42"} -> NOT_FOUND: "no program p42" (404, declared in hearth.toml)
    {}            -> MISSING_ID (400)

An error code is raised by name with hearth.Error; hearth answers it with
the status its [errors.CODE] declares.
"""

import hearth

PROGRAMS = {
    "p01": {"title": "Morning Headlines", "genre": "news"},
    "p02": {"title": "Match of the Week", "genre": "sport"},
    "p03": {"title": "The Lighthouse Keeper", "genre": "drama"},
}


def handler(event, context):
    program_id = event.get("id") if isinstance(event, dict) else None
    if not isinstance(program_id, str) or not program_id:
        raise hearth.Error("MISSING_ID", 'give the program\'s id, for example {"id": "p01"}')
    program = PROGRAMS.get(program_id)
    if program is None:
        raise hearth.Error("NOT_FOUND", "no program %s" % program_id)
    return dict(program, id=program_id)
