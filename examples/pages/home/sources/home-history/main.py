"""home-history: a data source, what a user watched and how far (history.json).

    {"user": "u1"}             -> {"user": "u1", "items": [{"program_id": "p02", "position_min": 34,
                                   "watched_at": "2024-11-30T21:40:00Z"}, ...]}
    {"user": "u1", "limit": 2} -> the two most recent
    {"user": "stranger"}       -> {"user": "stranger", "items": []}
    {"user": null}             -> {"user": null, "items": []}  (nobody signed in)

Newest first. position_min is where the user stopped, in minutes from the
start (the programs' durations are home-programs' business).
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(HERE, "history.json"), encoding="utf-8") as f:
    HISTORY = json.load(f)


def handler(event, context):
    user = event.get("user")
    entries = sorted(HISTORY.get(user, []) if user else [], key=lambda e: e["watched_at"], reverse=True)
    limit = event.get("limit")
    return {"user": user, "items": entries if limit is None else entries[:limit]}
