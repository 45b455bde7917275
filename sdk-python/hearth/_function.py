"""What a function running on hearth may use from this package, as well as
the client: :class:`Error`, an error raised with one of the function's own
error codes.

A Python worker gives every function a ``hearth`` module with ``Error``
(shims/python). A function that ships this package instead (in its own
dependencies) gets this ``Error``, which the worker treats the same way: it
knows either by the ``__hearth_error__`` marker and sends ``code`` in its
``error`` frame (shims/PROTOCOL.md, "Error codes").
"""

from typing import Optional

__all__ = ["Error"]


class Error(Exception):
    """Raise it from a handler to fail the call with one of the function's
    own error codes (declared in its hearth.toml as ``[errors.CODE]``)::

        raise hearth.Error("NOT_FOUND", "no program 42")

    ``code`` must be a non-empty ``str`` (the worker sends codes of 1 to 64
    characters matching ``[A-Za-z][A-Za-z0-9_.-]*``; any other is sent as a
    plain error saying why); ``message`` (optional) says what happened.
    """

    __hearth_error__ = True

    code: str
    message: Optional[str]

    def __init__(self, code: str, message: Optional[str] = None) -> None:
        if not isinstance(code, str):
            raise TypeError(
                "hearth.Error: the error code must be a str naming one of the function's error codes "
                "([errors.CODE] in hearth.toml), not %s" % type(code).__name__
            )
        if not code:
            raise ValueError(
                "hearth.Error: the error code is empty; name one of the function's error codes "
                "([errors.CODE] in hearth.toml)"
            )
        if message is not None and not isinstance(message, str):
            message = str(message)
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.code if self.message is None else self.message

    def __repr__(self) -> str:
        return "Error(%r, %r)" % (self.code, self.message)


Error.__module__ = "hearth"
