"""home-continue: a field, the "Continue watching" row.

Joins the user's history (home-history's items, newest first) with the
catalogue (home-programs' items): the programs they started and did not
finish, with how far they got.

    {"history": [{"program_id": "p02", "position_min": 34, ...}], "programs": [...]}
    -> {"title": "Continue watching", "items": [
         {"id": "p02", "title": "Harbour Lights", ..., "link": "/watch/p02?t=34m",
          "progress_pct": 62, "detail": "21 min left"}]}

A program watched to its last two minutes counts as finished; an id the
catalogue does not have is skipped. No history: an empty row.
"""

FINISHED_MIN = 2  # this close to the end counts as watched


def handler(event, context):
    programs = {p["id"]: p for p in event["programs"]}
    items = []
    for entry in event.get("history") or []:
        p = programs.get(entry["program_id"])
        if p is None:
            continue
        left = p["duration_min"] - entry["position_min"]
        if left <= FINISHED_MIN:
            continue
        items.append({
            "id": p["id"],
            "title": p["title"],
            "genre": p["genre"],
            "thumbnail": p["thumbnail"],
            "link": "/watch/%s?t=%dm" % (p["id"], entry["position_min"]),  # resume where they stopped
            "duration_min": p["duration_min"],
            "progress_pct": round(100 * entry["position_min"] / p["duration_min"]),
            "detail": "%d min left" % left,
        })
    return {"title": "Continue watching", "items": items}
