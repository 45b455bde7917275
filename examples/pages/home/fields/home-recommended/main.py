"""home-recommended: a field, the "Recommended for you" row.

From home-programs' items, the user's genres (home-interests) and what they
already watched (home-history): the programs they have not started, those
of the genres they like first. Among those, a genre liked more (earlier in
the list) counts more than a slightly better rating; the rest of the row is
filled with the best rated programs of other genres.

    {"programs": [...], "genres": ["drama", "documentary"], "history": [{"program_id": "p02", ...}], "limit": 2}
    -> {"title": "Recommended for you", "items": [
         {"id": "p18", "title": "The Inheritance", "genre": "drama", "thumbnail": "/img/programs/p18.jpg",
          "link": "/watch/p18", "duration_min": 58, "detail": "Drama · 2023 · ★ 4.7"}, ...]}

genres null (no interests): the best rated programs, titled "Popular picks".
"""


def handler(event, context):
    genres = event.get("genres") or []
    watched = {h["program_id"] for h in event.get("history") or []}
    limit = event.get("limit") or 10

    def score(p):
        if p["genre"] not in genres:
            return (0, p["rating"])
        # Liked genres first; 0.3 per place above the least liked one, on top of the rating (0 to 5).
        return (1, p["rating"] + (len(genres) - genres.index(p["genre"])) * 0.3)

    unwatched = [p for p in event["programs"] if p["id"] not in watched]
    best = sorted(unwatched, key=score, reverse=True)[:limit]
    return {"title": "Recommended for you" if genres else "Popular picks", "items": [tile(p) for p in best]}


def tile(p):
    """A program as a row shows it."""
    return {
        "id": p["id"],
        "title": p["title"],
        "genre": p["genre"],
        "thumbnail": p["thumbnail"],
        "link": "/watch/" + p["id"],
        "duration_min": p["duration_min"],
        "detail": "%s · %d · ★ %.1f" % (p["genre"].capitalize(), p["year"], p["rating"]),
    }
