"""Errors of the bridge, shared by the server and the client.

Every error carries a stable ``code`` (a short snake_case string written in
``docs/protocol.md``) and a message meant for an artist. The server puts both in its
error replies; the client turns a reply's code back into one of these classes, so a host
can catch ``OrderError`` or ``BridgeTimeout`` without reading codes.

Standard library only: hosts import this inside Nuke's and Resolve's own Pythons (3.7+).
"""

from __future__ import annotations

from typing import Dict, Type

# code -> what it means; docs/protocol.md lists the same table.
ERROR_CODES = {
    "bad_message": "the message does not follow the protocol (not JSON, missing or mistyped fields)",
    "protocol_version": "the client speaks another protocol version than the server",
    "unknown_op": "the header names an operation the server does not have",
    "bad_buffer": "a buffer is missing, extra, or its length does not match its shape and dtype",
    "bad_dtype": "an inline buffer's dtype is not float16 or float32",
    "too_large": "a message, header, image or clip count is over the server's limits",
    "bad_parameter": "a clip parameter is out of range or not one of its choices",
    "path_outside_roots": "a plate path is not under any of the server's root folders",
    "unknown_clip": "the clip was never opened, was closed, or was evicted: open it again",
    "clip_conflict": "a clip with this id is already open with other settings",
    "too_many_clips": "the server already holds its limit of busy clips",
    "out_of_order": "a strict-order frame cannot be made in sequence from the held state",
    "plate_error": "a plate cannot be read or written",
    "frame_input": "a frame cannot be matted (size, channels, values)",
    "weights_error": "the model's weights are missing or do not fit the variant",
    "colour_error": "an unknown colour space or an unusable colour configuration",
    "shutting_down": "the server is stopping and takes no new work",
    "internal": "the server hit a bug; its log has the traceback",
}


class BridgeError(Exception):
    """Base of every bridge error; ``code`` is one of ``ERROR_CODES`` (or ``timeout``)."""

    default_code = "internal"

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class ProtocolError(BridgeError):
    """A message breaks the protocol: malformed, wrong version, bad buffers, over a limit."""

    default_code = "bad_message"


class OrderError(BridgeError):
    """A frame asked for in strict order cannot follow the clip's held state."""

    default_code = "out_of_order"


class RemoteError(BridgeError):
    """The server understood the request but could not do the work (see ``code``)."""


class BridgeTimeout(BridgeError, TimeoutError):
    """No reply within the timeout after every retry: the server is down, busy or unreachable."""

    default_code = "timeout"


_CLASS_FOR_CODE: Dict[str, Type[BridgeError]] = {
    "bad_message": ProtocolError,
    "protocol_version": ProtocolError,
    "unknown_op": ProtocolError,
    "bad_buffer": ProtocolError,
    "bad_dtype": ProtocolError,
    "too_large": ProtocolError,
    "out_of_order": OrderError,
}


def error_for_code(code: str, message: str) -> BridgeError:
    """The client-side exception for a server error reply's ``code`` and ``message``."""
    return _CLASS_FOR_CODE.get(code, RemoteError)(message, code)
