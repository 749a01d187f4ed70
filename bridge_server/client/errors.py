"""Errors of the bridge, shared by the server and the client: one class per stable code.

Every error carries a stable ``code`` (a short snake_case string written in
``docs/protocol.md``) and a message meant for an artist. The server puts both in its error
replies; the client turns a reply's code back into the class below, so a host catches
``PathOutsideRoots`` or ``ServerBusy`` by type and never reads codes.

Standard library only: hosts import this inside Nuke's and Resolve's own Pythons (3.7+).
"""

from __future__ import annotations

from typing import Dict, Type


class BridgeError(Exception):
    """Base of every bridge error; ``code`` is one of ``ERROR_CODES``.

    ``retryable`` is true where sending the same request again later may succeed.
    """

    default_code = "internal"
    retryable = False

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


# -- the message itself -------------------------------------------------------------------
class ProtocolError(BridgeError):
    """A message breaks the protocol: malformed, wrong version, bad buffers, over a limit."""

    default_code = "bad_message"


class BadMessage(ProtocolError):
    """Not JSON, not an object, or a field missing or of the wrong type."""

    default_code = "bad_message"


class VersionMismatch(ProtocolError):
    """Client and server speak different protocol versions: update one of them."""

    default_code = "protocol_version"


class UnknownOperation(ProtocolError):
    default_code = "unknown_op"


class BadBuffer(ProtocolError):
    default_code = "bad_buffer"


class BadDtype(ProtocolError):
    default_code = "bad_dtype"


class TooLarge(ProtocolError):
    """A header, image or buffer over the server's limits."""

    default_code = "too_large"


# -- the work -----------------------------------------------------------------------------
class RemoteError(BridgeError):
    """The server understood the request but could not do the work (see the subclass)."""


class BadParameter(RemoteError):
    """A clip setting or command option out of range, unknown, or contradicting another."""

    default_code = "bad_parameter"


class PathOutsideRoots(RemoteError):
    """A plate path resolves outside every root folder the server was started with."""

    default_code = "path_outside_roots"


class PathNotMapped(RemoteError):
    """A path of another OS (``P:\\shows\\...`` sent to a Linux server) that no mapping rule covers."""

    default_code = "no_path_mapping"


class UnknownClip(RemoteError):
    """The clip was never opened, was closed, or was closed to make room: open it again."""

    default_code = "unknown_clip"


class ClipConflict(RemoteError):
    default_code = "clip_conflict"


class TooManyClips(RemoteError):
    default_code = "too_many_clips"
    retryable = True


class ServerBusy(RemoteError):
    """The clip's queue is full; the client backs off and sends the frame again."""

    default_code = "busy"
    retryable = True


class OrderError(RemoteError):
    """A frame asked for in strict order cannot follow the clip's held state."""

    default_code = "out_of_order"


class PlateError(RemoteError):
    """A plate cannot be read or written (missing, corrupt, or it would replace a file that is not ours)."""

    default_code = "plate_error"


class FrameInputError(RemoteError):
    default_code = "frame_input"


class WeightsError(RemoteError):
    default_code = "weights_error"


class ColourError(RemoteError):
    default_code = "colour_error"


class ShuttingDown(RemoteError):
    default_code = "shutting_down"


class SharedMemoryRefused(RemoteError):
    """The server will not map this shared-memory segment (not a sealed memfd, wrong size or
    token, over its limit, another host or container, or it offers none): send frames inline."""

    default_code = "shared_memory_refused"


class UnknownSegment(RemoteError):
    """A frame names a shared-memory segment the server does not hold (detached, dropped, or the
    server restarted): attach it again or send the frame inline."""

    default_code = "unknown_segment"


class InternalError(RemoteError):
    """A bug in the server; its log has the traceback. The server goes on serving."""

    default_code = "internal"


# -- the connection -----------------------------------------------------------------------
class BridgeTimeout(BridgeError, TimeoutError):
    """No sign of life from the server within the time the client was given."""

    default_code = "timeout"
    retryable = True


class AccessRefused(BridgeError):
    """The server refused the connection's CURVE handshake (missing or unknown keys)."""

    default_code = "access_refused"


_CLASSES = (BadMessage, VersionMismatch, UnknownOperation, BadBuffer, BadDtype, TooLarge, BadParameter,
            PathOutsideRoots, PathNotMapped, UnknownClip, ClipConflict, TooManyClips, ServerBusy, OrderError,
            PlateError, FrameInputError, WeightsError, ColourError, ShuttingDown, SharedMemoryRefused, UnknownSegment,
            InternalError, BridgeTimeout, AccessRefused)
CLASS_FOR_CODE: Dict[str, Type[BridgeError]] = {cls.default_code: cls for cls in _CLASSES}

# code -> what it means; docs/protocol.md lists the same table (a test holds them together).
ERROR_CODES = {
    "bad_message": "the message does not follow the protocol (not JSON, missing or mistyped fields)",
    "protocol_version": "the client speaks another protocol version than the server",
    "unknown_op": "the header names an operation the server does not have",
    "bad_buffer": "a buffer is missing, extra, or its length does not match its shape and dtype",
    "bad_dtype": "an inline buffer's dtype is not float16 or float32",
    "too_large": "a header, image or buffer is over the server's limits",
    "bad_parameter": "a setting is out of range, unknown, or contradicts another",
    "path_outside_roots": "a plate path is not under any of the server's root folders",
    "no_path_mapping": "a path of another OS that no path-mapping rule translates",
    "unknown_clip": "the clip was never opened, was closed, or was closed to make room: open it again",
    "clip_conflict": "a clip with this id is already open with other settings",
    "too_many_clips": "the server already holds its limit of busy clips",
    "busy": "the clip's queue is full: back off and send the frame again (the client does)",
    "out_of_order": "a strict-order frame cannot be made in sequence from the held state",
    "plate_error": "a plate cannot be read or written, or would replace a file rvm-bridge did not write",
    "frame_input": "a frame cannot be matted (size, channels, values)",
    "weights_error": "the model's weights are missing or do not fit the variant",
    "colour_error": "an unknown colour space or an unusable colour configuration",
    "shutting_down": "the server is stopping and takes no new work",
    "shared_memory_refused": "the server will not map this shared-memory segment (checks failed, over its limit, "
                             "or it offers none): send frames inline",
    "unknown_segment": "a frame names a shared-memory segment the server does not hold: attach it again",
    "internal": "the server hit a bug; its log has the traceback; it goes on serving",
}
CLIENT_CODES = {
    "timeout": "no reply from the server within the client's time-out (server down, or unreachable)",
    "access_refused": "the server refused the connection's CURVE keys",
}


def error_for_code(code: str, message: str) -> BridgeError:
    """The exception for an error reply's ``code`` and ``message`` (RemoteError for a code
    this client does not know, from a newer server)."""
    return CLASS_FOR_CODE.get(code, RemoteError)(message, code)
