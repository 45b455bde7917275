"""{{name}}: a field of a page. It asks the data source {{datasource}} for
programs (a nested call: through the worker, never over HTTP) and maps them
to the row the page shows:

    {"genre": "news"} -> {"field": "{{name}}", "title": "News",
                          "items": [{"label": "Morning Headlines", "link": "/programs/p01", "detail": "30 min"}, ...]}

If the data source fails, the row is empty and "error" says why: one
broken source must not fail the whole page.
"""

import hearth

SOURCE = "{{datasource}}"
ROW_SIZE = 4


def handler(event, context):
    event = event if isinstance(event, dict) else {}
    genre = event.get("genre")
    ask = {"limit": ROW_SIZE}
    if isinstance(genre, str) and genre:
        ask["genre"] = genre
    else:
        genre = None
    row = {"field": "{{name}}", "title": genre.capitalize() if genre else "Programs", "items": []}
    try:
        programs = context.invoke(SOURCE, ask)
    except hearth.InvokeError as exc:
        row["error"] = "%s: %s" % (SOURCE, exc.code)
        return row
    row["items"] = [item(p) for p in programs if isinstance(p, dict) and p.get("id")]
    return row


def item(program):
    """One program as the page shows it."""
    return {
        "label": str(program.get("title", "")),
        "link": "/programs/%s" % program["id"],
        "detail": "%s min" % program.get("duration_min", "?"),
    }
