"""home-new-releases: a field, the "New releases" row.

From home-programs' items: the programs of the latest year in the
catalogue, best rated first.

    {"programs": [...], "limit": 3}
    -> {"title": "New releases", "year": 2024, "items": [
         {"id": "p29", "title": "Frozen Planet Diaries", ..., "detail": "New · Documentary"}, ...]}
"""


def handler(event, context):
    programs = event["programs"]
    if not programs:
        return {"title": "New releases", "year": None, "items": []}
    year = max(p["year"] for p in programs)
    newest = sorted((p for p in programs if p["year"] == year), key=lambda p: p["rating"], reverse=True)
    items = [
        {
            "id": p["id"],
            "title": p["title"],
            "genre": p["genre"],
            "thumbnail": p["thumbnail"],
            "link": "/watch/" + p["id"],
            "duration_min": p["duration_min"],
            "detail": "New · " + p["genre"].capitalize(),
        }
        for p in newest[: event.get("limit") or 10]
    ]
    return {"title": "New releases", "year": year, "items": items}
