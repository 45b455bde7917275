"""A function that misbehaves on request: `event["mode"]` picks the fault.

Every fault is bounded so that it cannot harm the test machine when the
daemon's limits are missing: bombs stop at `event["max"]` and their children
end by themselves after `event["linger"]` seconds.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

MB = 1024 * 1024


def handler(event, context):
    mode = event.get("mode", "ok")
    fault = MODES.get(mode)
    if fault is None:
        raise ValueError("unknown mode %r; known: %s" % (mode, ", ".join(sorted(MODES))))
    return fault(event)


def ok(event):
    return {"ok": True, "pid": os.getpid()}


def loop(event):
    """Burn CPU until killed. With `ignore_term`, SIGTERM is noted (in the
    file `chaos-got-sigterm` of the temp dir, and on stderr) and ignored, so
    only SIGKILL ends it; with `child`, it first starts a
    child process in a session of its own that shares its stdout and stderr
    (only a whole-tree kill ends that one)."""
    if event.get("ignore_term"):
        def noted(signum, frame):
            import tempfile

            with open(os.path.join(tempfile.gettempdir(), "chaos-got-sigterm"), "w") as f:
                f.write("SIGTERM")
            sys.stderr.write("chaos: got SIGTERM, ignoring it\n")
            sys.stderr.flush()

        signal.signal(signal.SIGTERM, noted)
    if event.get("child"):
        child = subprocess.Popen(
            ["sleep", str(event.get("linger", 60))], start_new_session=True
        )
        sys.stderr.write("chaos: sleeping child %d\n" % child.pid)
        sys.stderr.flush()
    end = time.time() + event.get("seconds", 60)
    while time.time() < end:
        pass
    return {"looped": True}


def sleep(event):
    time.sleep(event.get("seconds", 60))
    return {"slept": True}


def alloc(event):
    """Allocate and touch `mb` MiB, one MiB at a time."""
    chunks = []
    for _ in range(event.get("mb", 512)):
        chunks.append(b"\x01" * MB)
    return {"allocated_mb": len(chunks)}


def forkbomb(event):
    """Fork until fork fails (the error propagates) or `max` children run.
    Each child sleeps `linger` seconds and exits."""
    children = []
    for _ in range(event.get("max", 256)):
        pid = os.fork()
        if pid == 0:
            try:
                time.sleep(event.get("linger", 30))
            finally:
                os._exit(0)
        children.append(pid)
    return {"forked": len(children)}


def threadbomb(event):
    """Start threads until that fails (the error propagates) or `max` run."""
    linger = event.get("linger", 30)
    started = 0
    for _ in range(event.get("max", 1024)):
        threading.Thread(target=time.sleep, args=(linger,), daemon=True).start()
        started += 1
    return {"threads": started}


def segv(event):
    import ctypes

    ctypes.string_at(0)
    return {"survived": True}


def exit_(event):
    os._exit(event.get("status", 3))


def garbage(event):
    """Write bytes that are not a protocol frame on the worker's protocol
    pipe, then wait: the daemon must notice the garbage, not the timeout."""
    os.write(4, b"\x00\x00\x00\x08\xc1\xc1\xc1\xc1\xc1\xc1\xc1\xc1")
    time.sleep(event.get("seconds", 30))
    return {"wrote": "garbage"}


def closefds(event):
    os.close(3)
    os.close(4)
    return {"closed": [3, 4]}


def stdout100mb(event):
    line = "x" * 1023 + "\n"
    block = line * 1024
    for _ in range(event.get("mb", 100)):
        sys.stdout.write(block)
    sys.stdout.flush()
    return {"printed_mb": event.get("mb", 100)}


def big_response(event):
    return "x" * (event.get("kb", 2048) * 1024)


def child(event):
    """Leave a process running after the call (in a session of its own)."""
    proc = subprocess.Popen(
        ["sleep", str(event.get("seconds", 1000))],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return {"child": proc.pid, "pid": os.getpid()}


def outcome(action):
    """"allowed", "denied" (EACCES, EPERM, EROFS), or another error's text."""
    try:
        action()
        return "allowed"
    except PermissionError:
        return "denied"
    except OSError as e:
        if e.errno == 30:  # EROFS
            return "denied"
        return "%s: %s" % (type(e).__name__, e)


def read_file(path):
    with open(path, "rb") as f:
        f.read(1)


def write_file(path):
    with open(path, "wb") as f:
        f.write(b"chaos was here\n")
    os.unlink(path)


def probe(event):
    """Try each path: read, list, write; write a file in the temp dir and
    one in /tmp. Also report the worker's identity, temp dir and limits."""
    import resource
    import tempfile

    result = {
        "read": {p: outcome(lambda p=p: read_file(p)) for p in event.get("read", [])},
        "list": {p: outcome(lambda p=p: os.listdir(p)) for p in event.get("list", [])},
        "write": {p: outcome(lambda p=p: write_file(p)) for p in event.get("write", [])},
    }
    tmp_name = event.get("tmp_name")
    if tmp_name:
        # Left in place, for the test to find where they landed.
        result["tmp_write"] = {}
        for label, where in (("tmpdir", tempfile.gettempdir()), ("slash_tmp", "/tmp")):
            path = os.path.join(where, "%s-%s" % (tmp_name, label))
            with open(path, "w") as f:
                f.write("private")
            with open(path) as f:
                result["tmp_write"][label] = f.read()
    with open("/proc/self/cgroup") as f:
        cgroups = f.read()
    result["identity"] = {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "pid": os.getpid(),
        "tmpdir": os.environ.get("TMPDIR", ""),
        "gettempdir": tempfile.gettempdir(),
        "cgroup": cgroups,
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0],
        "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
    }
    return result


def connect(event):
    """Open a TCP connection to `host`:`port`."""
    try:
        with socket.create_connection((event["host"], event["port"]), timeout=1):
            return "connected"
    except OSError as e:
        return "%s: %s" % (type(e).__name__, e)


def burn(event):
    """Busy-loop for `seconds` of wall time; return the CPU seconds used."""
    start_cpu = time.process_time()
    end = time.time() + event.get("seconds", 1)
    while time.time() < end:
        pass
    return {"cpu": time.process_time() - start_cpu, "wall": event.get("seconds", 1)}


def bigfile(event):
    """Write `mb` MiB to a file in the temp dir."""
    import tempfile

    written = 0
    try:
        with tempfile.TemporaryFile() as f:
            for _ in range(event.get("mb", 2)):
                f.write(b"\0" * MB)
                f.flush()
                written += 1
        return {"written_mb": written}
    except OSError as e:
        return {"written_mb": written, "error": "%s: %s" % (type(e).__name__, e), "errno": e.errno}


MODES = {
    "ok": ok,
    "loop": loop,
    "sleep": sleep,
    "alloc": alloc,
    "forkbomb": forkbomb,
    "threadbomb": threadbomb,
    "segv": segv,
    "exit": exit_,
    "garbage": garbage,
    "closefds": closefds,
    "stdout100mb": stdout100mb,
    "big_response": big_response,
    "child": child,
    "probe": probe,
    "connect": connect,
    "burn": burn,
    "bigfile": bigfile,
}
