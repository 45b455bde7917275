#!/usr/bin/env python3
"""Call the README's hello function, then the recommended-row example (a
field-mapping function that calls two data sources), with the Python SDK
and print what it
answered, with the call's log lines from its record.

    hearth deploy examples/python/hello
    python3 examples/sdk/python_client.py [NAME]

The daemon: HEARTH_ADDR (default 127.0.0.1:7700). The token (reading the
call's record needs scope `read`; the call itself needs none, hello's
application is open): HEARTH_TOKEN, else the admin token a daemon on this
host wrote to its data directory (HEARTH_DATA, ./hearth-data, or the
default data directory), as the CLI finds it. Without either it calls
without reading the record.

Uses the SDK from sdk-python/ when it is not installed.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "sdk-python"))

import hearth  # noqa: E402


def local_token():
    """HEARTH_TOKEN, else a local daemon's admin.token (None if none can be read)."""
    token = os.environ.get("HEARTH_TOKEN", "").strip()
    if token:
        return token
    dirs = []
    if os.environ.get("HEARTH_DATA"):
        dirs.append(os.environ["HEARTH_DATA"])
    dirs.append("hearth-data")
    xdg = os.environ.get("XDG_DATA_HOME")
    home = os.environ.get("HOME")
    if xdg:
        dirs.append(os.path.join(xdg, "hearth"))
    elif home:
        dirs.append(os.path.join(home, ".local", "share", "hearth"))
    for d in dirs:
        try:
            with open(os.path.join(d, "admin.token")) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text:
            return text
    return None


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "Ada"
    token = local_token()
    with hearth.Client(token=token) as client:
        try:
            result = client.invoke("hello", {"name": name}, log=token is not None)
        except hearth.FunctionNotFound as e:
            sys.exit("%s\n(deploy it first: hearth deploy examples/python/hello)" % e)
        except hearth.HearthError as e:
            sys.exit(str(e))
    print(result.value["greeting"])
    print(
        "answered by %s version %s in %.1f ms (%s start, request %s)"
        % (
            result.function,
            result.version,
            result.duration_ms,
            result.start or "?",
            result.request_id,
        )
    )
    for line in result.log or []:
        print("  %s: %s" % (line["stream"], line["text"]))
    recommended_row(token)


def recommended_row(token):
    """The field-mapping example: a page's row built from two data sources
    (its nested calls run inside hearth; this is one call)."""
    with hearth.Client(token=token) as client:
        try:
            row = client.invoke("recommended-row", {"user": "u1"})
        except hearth.FunctionNotFound:
            print("(recommended-row is not deployed; scripts/up deploys every example)")
            return
        except hearth.HearthError as e:
            sys.exit(str(e))
    print("%s (%s, %.1f ms):" % (row.value["title"], "personalised" if row.value["personalised"] else "not personalised", row.duration_ms))
    for item in row.value["items"]:
        print("  %s [%s]" % (item["title"], item["genre"]))


if __name__ == "__main__":
    main()
