"""Python client for hearth, a function runtime: call functions, deploy,
publish and roll them back, read their call records and statistics over
the daemon's HTTP API (docs/API.md). Standard library only.

    import hearth
    client = hearth.Client()              # HEARTH_ADDR, HEARTH_TOKEN
    print(client.invoke("hello", {"name": "Ada"}).value)

In a function's own code, ``raise hearth.Error("NOT_FOUND", "no program 42")``
fails the call with one of its declared error codes.
"""

__version__ = "0.1.0"

from . import errors  # noqa: E402
from ._async import AsyncClient  # noqa: E402
from ._client import DEFAULT_ADDR, Client, PageResult, Result, parse_addr  # noqa: E402
from ._function import Error  # noqa: E402
from ._transport import Response, Transport  # noqa: E402
from .errors import *  # noqa: E402,F401,F403

__all__ = [
    "__version__",
    "AsyncClient",
    "Client",
    "DEFAULT_ADDR",
    "Error",
    "PageResult",
    "Result",
    "Response",
    "Transport",
    "errors",
    "parse_addr",
] + list(errors.__all__)
