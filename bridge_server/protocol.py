"""The bridge protocol: ZeroMQ multipart messages, a versioned JSON header first, then buffers.

``docs/protocol.md`` is the readable contract; this module is its executable half, shared by
the server (which decodes requests) and the client (which encodes them). Decoding is a pure
function of the message parts and the server's limits: any bytes give a ``Request`` or a
``BridgeError`` with a stable code, never another exception.

Standard library only (Python 3.7+): hosts import this inside Nuke's and Resolve's Pythons.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .errors import BridgeError, error_for_code
from .parameters import CLIP_PARAMETERS, INLINE_DTYPES, Parameter

PROTOCOL_VERSION = 1
# Clear of Nuke's Frame Server ports (5558-5662).
DEFAULT_PORT = 5701
DEFAULT_ADDRESS = f"tcp://127.0.0.1:{DEFAULT_PORT}"

OPS = ("hello", "describe_models", "status", "open_clip", "frame", "close_clip")
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_FRAME_NUMBER = 10 ** 9
MAX_PATH_CHARS = 4096

Buffer = Union[bytes, memoryview, bytearray]


@dataclass(frozen=True)
class Limits:
    """What the server accepts; every bound is inclusive."""

    max_header_bytes: int = 64 * 1024
    max_buffer_bytes: int = 1024 ** 3
    max_image_side: int = 16384
    max_image_pixels: int = 8192 * 8192


@dataclass(frozen=True)
class InlineImage:
    """An image carried in a message buffer: ``shape`` is ``(height, width, channels)``."""

    buffer: int
    shape: Tuple[int, int, int]
    dtype: str

    @property
    def nbytes(self) -> int:
        height, width, channels = self.shape
        return height * width * channels * INLINE_DTYPES[self.dtype]


@dataclass
class Request:
    """One decoded request; fields an operation does not use keep their defaults."""

    op: str
    id: str
    client: str = ""
    clip: str = ""
    settings: Dict[str, Any] = field(default_factory=dict)
    frame: int = 0
    source_path: Optional[str] = None
    inline: Optional[InlineImage] = None
    strict: bool = False
    buffers: List[Buffer] = field(default_factory=list)


def fail(code: str, message: str) -> BridgeError:
    """The error for ``code`` (raise it); used by the decoder and the server alike."""
    return error_for_code(code, message)


def encode(header: Dict[str, Any], buffers: Sequence[Buffer] = ()) -> List[Buffer]:
    """Message parts for ``header`` (JSON, no NaN) followed by ``buffers`` as they are."""
    text = json.dumps(header, separators=(",", ":"), allow_nan=False)
    return [text.encode("utf-8")] + list(buffers)


def request_header(op: str, request_id: str, **fields: Any) -> Dict[str, Any]:
    """A request header with the protocol version, operation and request id filled in."""
    header = {"protocol": PROTOCOL_VERSION, "op": op, "id": request_id}
    header.update(fields)
    return header


def reply_header(request_id: str, op: str, **fields: Any) -> Dict[str, Any]:
    header = {"protocol": PROTOCOL_VERSION, "id": request_id, "op": op, "ok": True}
    header.update(fields)
    return header


def error_header(request_id: str, op: str, code: str, message: str, **fields: Any) -> Dict[str, Any]:
    header = {
        "protocol": PROTOCOL_VERSION,
        "id": request_id,
        "op": op,
        "ok": False,
        "error": {"code": code, "message": message},
    }
    header.update(fields)
    return header


def split_envelope(parts: Sequence[Buffer]) -> Tuple[List[Buffer], List[Buffer]]:
    """Split a ROUTER message into its routing envelope (through the empty delimiter) and body.

    A peer that sent no delimiter gets replies routed by its identity alone.
    """
    for index, part in enumerate(parts):
        if len(part) == 0:
            return list(parts[: index + 1]), list(parts[index + 1:])
    return list(parts[:1]), list(parts[1:])


def parse_header(raw: Buffer, limits: Limits) -> Dict[str, Any]:
    """The JSON object in ``raw``; raises ``ProtocolError`` (bad_message, too_large)."""
    if len(raw) > limits.max_header_bytes:
        raise fail("too_large", f"header is {len(raw)} bytes; the limit is {limits.max_header_bytes}")
    try:
        header = json.loads(bytes(raw).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise fail("bad_message", f"header is not UTF-8 JSON: {error}") from None
    if not isinstance(header, dict):
        raise fail("bad_message", "header must be a JSON object")
    return header


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a header")


def peek_id(header: Dict[str, Any]) -> Tuple[str, str]:
    """The request id and op of a header, as far as they are usable, for error replies."""
    request_id = header.get("id")
    op = header.get("op")
    return (
        request_id if isinstance(request_id, str) and _ID.match(request_id) else "",
        op if isinstance(op, str) and op in OPS else "",
    )


def decode_request(parts: Sequence[Buffer], limits: Limits = Limits()) -> Request:
    """Decode a request's parts (header, then buffers; no routing envelope).

    Raises a ``BridgeError`` whose code is one of bad_message, protocol_version, unknown_op,
    bad_buffer, bad_dtype, too_large or bad_parameter; nothing else escapes.
    """
    if not parts:
        raise fail("bad_message", "empty message: a JSON header is required")
    header = parse_header(parts[0], limits)
    version = header.get("protocol")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise fail(
            "protocol_version",
            f"client speaks protocol {version!r}, this server speaks {PROTOCOL_VERSION}; "
            "update the client or the server so they match",
        )
    request = Request(op=_op(header), id=_text(header, "id", pattern=_ID), buffers=list(parts[1:]))
    if request.op == "hello":
        client = header.get("client")
        request.client = _text(header, "client", max_chars=200) if client is not None else ""
    if request.op in ("open_clip", "frame", "close_clip"):
        request.clip = _text(header, "clip", pattern=_ID)
    if request.op == "open_clip":
        request.settings = decode_settings(header.get("settings", {}))
    if request.op == "frame":
        _decode_frame(header, request, limits)
    elif request.buffers:
        raise fail("bad_buffer", f"{request.op} takes no buffers; {len(request.buffers)} were sent")
    return request


def _op(header: Dict[str, Any]) -> str:
    op = header.get("op")
    if not isinstance(op, str):
        raise fail("bad_message", "header field 'op' must be a string")
    if op not in OPS:
        raise fail("unknown_op", f"unknown operation {op[:64]!r}; known: {', '.join(OPS)}")
    return op


def _decode_frame(header: Dict[str, Any], request: Request, limits: Limits) -> None:
    request.frame = _integer(header, "frame")
    request.strict = _boolean(header, "strict", False)
    source = header.get("source")
    if source is None:
        if request.buffers:
            raise fail("bad_buffer", "buffers were sent but 'source' names no inline image")
        return
    if not isinstance(source, dict) or len(source) != 1 or not ({"path", "inline"} & set(source)):
        raise fail("bad_message", "'source' must be {\"path\": ...} or {\"inline\": {...}}")
    if "path" in source:
        request.source_path = _path(source, "path")
        if request.buffers:
            raise fail("bad_buffer", "a frame given by path takes no buffers")
        return
    request.inline = decode_inline(source["inline"], len(request.buffers), limits)
    actual = len(request.buffers[request.inline.buffer])
    if actual != request.inline.nbytes:
        raise fail(
            "bad_buffer",
            f"inline buffer holds {actual} bytes but shape {list(request.inline.shape)} "
            f"{request.inline.dtype} needs {request.inline.nbytes}",
        )


def decode_inline(spec: Any, buffer_count: int, limits: Limits, channel_counts: Tuple[int, ...] = (3, 4)
                  ) -> InlineImage:
    """Validate an inline image description against the buffers present and the limits.

    Frames sent to the server are RGB or RGBA; replies also carry one-channel alpha."""
    if not isinstance(spec, dict):
        raise fail("bad_message", "'inline' must be an object with buffer, shape and dtype")
    dtype = spec.get("dtype")
    if dtype not in INLINE_DTYPES:
        raise fail("bad_dtype", f"inline dtype {str(dtype)[:32]!r} is not one of {', '.join(INLINE_DTYPES)}")
    shape = spec.get("shape")
    if not isinstance(shape, list) or len(shape) != 3 or not all(_is_int(v) for v in shape):
        raise fail("bad_message", "inline 'shape' must be [height, width, channels] integers")
    height, width, channels = shape
    if channels not in channel_counts:
        raise fail("bad_message", f"inline image has {channels} channels; expected {channel_counts}")
    if not (1 <= height <= limits.max_image_side and 1 <= width <= limits.max_image_side):
        raise fail("too_large", f"inline image {width}x{height} is outside 1..{limits.max_image_side} per side")
    if height * width > limits.max_image_pixels:
        raise fail("too_large", f"inline image {width}x{height} is over {limits.max_image_pixels} pixels")
    image = InlineImage(_integer(spec, "buffer", 0, 64), (height, width, channels), dtype)
    if image.nbytes > limits.max_buffer_bytes:
        raise fail("too_large", f"inline image needs {image.nbytes} bytes; the limit is {limits.max_buffer_bytes}")
    if image.buffer >= buffer_count:
        raise fail("bad_buffer", f"inline image names buffer {image.buffer} but {buffer_count} were sent")
    if buffer_count != 1:
        raise fail("bad_buffer", f"a frame takes exactly one buffer; {buffer_count} were sent")
    return image


def decode_settings(raw: Any) -> Dict[str, Any]:
    """Clip settings with defaults filled in; raises bad_message or bad_parameter."""
    if not isinstance(raw, dict):
        raise fail("bad_message", "'settings' must be a JSON object")
    known = {parameter.name: parameter for parameter in CLIP_PARAMETERS}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise fail("bad_parameter", f"unknown clip setting(s) {', '.join(map(repr, unknown))[:200]}")
    settings = {name: _check_parameter(parameter, raw.get(name, parameter.default)) for name, parameter in known.items()}
    outputs = settings["outputs"]
    if not any(outputs.values()) and not settings["inline_outputs"]:
        raise fail("bad_parameter", "the clip writes nothing: name an output plate pattern or ask for inline outputs")
    return settings


def _check_parameter(parameter: Parameter, value: Any) -> Any:
    if value is None and parameter.nullable:
        return None
    kind, name = parameter.kind, parameter.name
    if kind == "choice":
        if value not in parameter.choices:
            raise fail("bad_parameter", f"{name} {str(value)[:40]!r} is not one of {', '.join(parameter.choices)}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("bad_parameter", f"{name} must be a number")
        low, high = parameter.minimum, parameter.maximum
        if (low is not None and value <= low) or (high is not None and value > high):
            raise fail("bad_parameter", f"{name} {value} must be in ({low}, {high}]")
        value = float(value)
    elif kind == "integer":
        value = _integer({name: value}, name)
    elif kind == "boolean":
        value = _boolean({name: value}, name, False)
    elif kind == "outputs":
        value = _outputs(value)
    else:  # path, pattern or text
        value = _path({name: value}, name)
    return value


def _outputs(value: Any) -> Dict[str, Optional[str]]:
    if not isinstance(value, dict) or not set(value) <= {"alpha", "foreground", "rgba"}:
        raise fail("bad_parameter", "outputs must be an object with alpha, foreground and/or rgba patterns")
    return {name: (_path(value, name) if value.get(name) is not None else None) for name in ("alpha", "foreground", "rgba")}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(obj: Dict[str, Any], key: str, low: int = -MAX_FRAME_NUMBER, high: int = MAX_FRAME_NUMBER) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise fail("bad_message", f"field {key!r} must be an integer in {low}..{high}")
    return value


def _boolean(obj: Dict[str, Any], key: str, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise fail("bad_message", f"field {key!r} must be true or false")
    return value


def _text(obj: Dict[str, Any], key: str, *, pattern: Optional[re.Pattern[str]] = None, max_chars: int = 64) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= max_chars or (pattern and not pattern.match(value)):
        allowed = " of letters, digits and ._:-" if pattern else ""
        raise fail("bad_message", f"field {key!r} must be a string of 1..{max_chars} characters{allowed}")
    return value


def _path(obj: Dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_PATH_CHARS or "\0" in value:
        raise fail("bad_message", f"field {key!r} must be a path of 1..{MAX_PATH_CHARS} characters without NUL")
    return value
