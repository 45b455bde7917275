import json
import os

with open(os.path.join(os.path.dirname(__file__), "countries.json"), encoding="utf-8") as f:
    COUNTRIES = json.load(f)


def handler(event, context):
    code = str(event.get("code", "")).upper()
    country = COUNTRIES.get(code)
    if country is None:
        raise KeyError(f"unknown country code {code!r}; known: {', '.join(sorted(COUNTRIES))}")
    return {"code": code, **country}
