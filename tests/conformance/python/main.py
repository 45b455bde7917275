# Conformance fixture: the same behaviour in every runtime (see ../README.md).
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def echo(event):
    return event


def echo_ctx(event, context):
    return {"event": event, "function": context.function_name, "request_id": context.request_id}


def fail(event):
    raise ValueError("boom: " + event["msg"])


def fail_code(event):
    import hearth

    raise hearth.Error(event["code"], event["msg"])


def chatty(event):
    for i in range(event["lines"]):
        print(f"out line {i}")
    sys.stderr.write("err line\n")
    print("no newline at the end", end="")
    return {"ok": True, "n": event["lines"]}


def read_file(event):
    with open(os.path.join(HERE, "data.txt")) as f:
        return f.read()
