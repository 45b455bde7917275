"""A field-mapping function: the "recommended" row of a home page.

Given {"user": "u1"} it asks two data sources at once (context.invoke_many):
`programs` (Node: a list of {"id", "title", "genre", ...} for {"limit": N})
and `user-interests` (Lua: {"user": ..., "genres": [...]} for {"user": ...}),
and returns at most ROW_SIZE programs, those in the user's genres first.

Either source may fail: without interests the row is the programs as they
come ("personalised": false), without programs it is empty; the output says
what went wrong in "degraded" rather than failing the page.
"""

import hearth

ROW_SIZE = 5
CANDIDATES = 20  # programs asked for, to pick the row from
INTERESTS_TIMEOUT_MS = 300  # personalisation must not hold the page up


def handler(event, context):
    event = event if isinstance(event, dict) else {}
    user = event.get("user")
    calls = [("programs", {"limit": CANDIDATES})]
    if isinstance(user, str) and user:
        calls.append(("user-interests", {"user": user}, {"timeout_ms": INTERESTS_TIMEOUT_MS}))
    results = context.invoke_many(calls)

    degraded = []
    programs = results[0]
    if isinstance(programs, hearth.InvokeError):
        degraded.append(reason(programs))
        programs = []
    elif not isinstance(programs, list):
        degraded.append("programs returned %s, not a list" % type(programs).__name__)
        programs = []

    genres = None
    if len(results) > 1:
        interests = results[1]
        if isinstance(interests, hearth.InvokeError) and interests.retryable:
            # refused before it ran (queue full, overloaded, ...): worth one
            # more try; hearth itself never retries
            try:
                interests = context.invoke("user-interests", {"user": user}, timeout_ms=INTERESTS_TIMEOUT_MS)
            except hearth.InvokeError as exc:
                interests = exc
        if isinstance(interests, hearth.InvokeError):
            degraded.append(reason(interests))
        elif isinstance(interests, dict) and isinstance(interests.get("genres"), list):
            genres = [g for g in interests["genres"] if isinstance(g, str)]
        else:
            degraded.append("user-interests returned no genres list")
    else:
        degraded.append("no user in the event")

    items = [item(p) for p in programs if isinstance(p, dict) and p.get("title")]
    personalised = genres is not None
    if personalised:
        liked = set(genres)
        # sorted() is stable: within each group the programs keep their order
        items.sort(key=lambda p: p["genre"] not in liked)
    items = items[:ROW_SIZE]
    if personalised:
        for p in items:
            p["matched"] = p["genre"] in liked
    return {
        "title": "Picked for you" if personalised else "Popular now",
        "user": user,
        "personalised": personalised,
        "items": items,
        "degraded": degraded,
    }


def item(program):
    genre = program.get("genre")
    return {"id": program.get("id"), "title": str(program["title"]), "genre": genre if isinstance(genre, str) else None}


def reason(exc):
    """What the output says about a failed source (the code tells a person what to look at)."""
    text = "%s: %s" % (exc.function, exc.code)
    if exc.error is not None:  # the source itself raised
        text += " (%s)" % exc.error["type"]
    return text
