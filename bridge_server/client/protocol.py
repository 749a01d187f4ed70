"""The bridge protocol: ZeroMQ multipart messages, a versioned JSON header first, then buffers.

``docs/protocol.md`` is the readable contract; this module is its executable half, shared by
the server (which decodes requests) and the client (which encodes them). Decoding is a pure
function of the message parts and the server's limits: any bytes give a ``Request`` or a
``ProtocolError``/``BadParameter`` with a stable code, never another exception. Every field is
type-checked before it is used (a dict where a string belongs must not reach a ``dict``
lookup, which would raise ``TypeError``).

Standard library only (Python 3.7+): hosts import this inside Nuke's and Resolve's Pythons.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .errors import BadBuffer, BadDtype, BadMessage, BadParameter, TooLarge, UnknownOperation, VersionMismatch
from .parameters import (
    CLIP_PARAMETERS,
    INLINE_DTYPES,
    OUTPUT_NAMES,
    PARAMETERS_BY_NAME,
    TRY_RATIOS,
    TRY_RATIOS_MAX,
    TRY_RATIOS_MAX_FRAMES,
    TRY_RATIOS_PREROLL,
    TRY_RATIOS_SETTINGS,
    Parameter,
)

PROTOCOL_VERSION = 2
# Clear of Nuke's Frame Server ports (5558-5662).
DEFAULT_PORT = 5701
DEFAULT_ADDRESS = f"tcp://127.0.0.1:{DEFAULT_PORT}"

OPS = ("hello", "describe_models", "status", "open_clip", "frame", "close_clip", "plan_render", "try_ratios",
       "attach_shared", "detach_shared")
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
# JSON's "\ud800" escape decodes to a lone surrogate, which no file system, log or colour
# config can take: the server would answer such a path or name with an internal error.
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_FRAME_NUMBER = 10 ** 9
MAX_PATH_CHARS = 4096
MAX_RANGE_CHARS = 4096
MAX_LISTED_FRAMES = 100_000
MAX_PREROLL = 100_000
# A shared-memory segment starts with a page holding the client's token (16 random bytes); the
# regions frames name lie after it. Offsets and sizes are bounded so sums never overflow anything.
SHARED_HEADER_BYTES = 4096
SHARED_TOKEN_BYTES = 16
MAX_SHARED_BYTES = 1 << 40
MAX_PID = 1 << 22  # Linux's pid_max ceiling
MAX_FD = (1 << 31) - 1

Buffer = Union[bytes, memoryview, bytearray]


@dataclass(frozen=True)
class Limits:
    """What the server accepts; every bound is inclusive."""

    max_header_bytes: int = 64 * 1024
    max_buffer_bytes: int = 1024 ** 3
    max_image_side: int = 16384
    max_image_pixels: int = 8192 * 8192


def image_bytes(shape: Tuple[int, int, int], dtype: str) -> int:
    """Bytes of an ``(height, width, channels)`` image of ``dtype`` laid out as an inline buffer."""
    height, width, channels = shape
    return height * width * channels * INLINE_DTYPES[dtype]


@dataclass(frozen=True)
class InlineImage:
    """An image carried in a message buffer: ``shape`` is ``(height, width, channels)``."""

    buffer: int
    shape: Tuple[int, int, int]
    dtype: str

    @property
    def nbytes(self) -> int:
        return image_bytes(self.shape, self.dtype)


@dataclass(frozen=True)
class SharedRegion:
    """``nbytes`` bytes at ``offset`` in the shared-memory segment the server calls ``segment``."""

    segment: str
    offset: int
    nbytes: int

    @property
    def end(self) -> int:
        return self.offset + self.nbytes

    def overlaps(self, other: SharedRegion) -> bool:
        return self.segment == other.segment and self.offset < other.end and other.offset < self.end


@dataclass(frozen=True)
class SharedImage:
    """An image in a shared-memory segment, laid out as an inline buffer is."""

    segment: str
    offset: int
    shape: Tuple[int, int, int]
    dtype: str

    @property
    def region(self) -> SharedRegion:
        return SharedRegion(self.segment, self.offset, image_bytes(self.shape, self.dtype))


@dataclass(frozen=True)
class SharedAttach:
    """What ``attach_shared`` asks: map the memfd ``fd`` of process ``pid``, ``nbytes`` long, whose
    first bytes hold ``token`` (hex)."""

    pid: int
    fd: int
    nbytes: int
    token: str


@dataclass
class RenderPlanRequest:
    """What ``plan_render`` asks: a source pattern, a frame range, the outputs, and how to resume."""

    source: str
    frames: Union[None, str, List[int]]
    outputs: Dict[str, Optional[str]]
    resume: bool = False
    shot_start: Optional[int] = None
    preroll: int = 32
    resume_limit: int = 1000


@dataclass
class RatiosRequest:
    """What ``try_ratios`` asks: matte ``frames`` of ``source`` at each of ``ratios`` after up to
    ``preroll`` frames before them, and write the contact sheet PNG to ``sheet`` (None: figures only)."""

    source: str
    frames: Union[str, List[int]]
    ratios: List[float]
    preroll: int = TRY_RATIOS_PREROLL
    sheet: Optional[str] = None
    settings: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Request:
    """One decoded request; fields an operation does not use keep their defaults.

    ``write`` names the outputs to write for a frame (None: all of the clip's; empty: run the
    frame only, as a pre-roll); ``refresh`` makes a frame again even when a plate of it is cached.
    ``shared`` is a frame's source in shared memory, ``shared_outputs`` where its inline outputs go;
    ``segment`` and ``token`` name the segment ``detach_shared`` lets go of.
    """

    op: str
    id: str
    client: str = ""
    clip: str = ""
    settings: Dict[str, Any] = field(default_factory=dict)
    frame: int = 0
    source_path: Optional[str] = None
    inline: Optional[InlineImage] = None
    strict: bool = False
    refresh: bool = False
    write: Optional[Tuple[str, ...]] = None
    plan: Optional[RenderPlanRequest] = None
    ratios: Optional[RatiosRequest] = None
    shared: Optional[SharedImage] = None
    shared_outputs: Optional[SharedRegion] = None
    attach: Optional[SharedAttach] = None
    segment: str = ""
    token: str = ""
    buffers: List[Buffer] = field(default_factory=list)


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
    header = {"protocol": PROTOCOL_VERSION, "id": request_id, "op": op, "ok": False,
              "error": {"code": code, "message": message}}
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
    """The JSON object in ``raw``; raises ``BadMessage`` or ``TooLarge``."""
    if len(raw) > limits.max_header_bytes:
        raise TooLarge(f"header is {len(raw)} bytes; the limit is {limits.max_header_bytes}")
    try:
        header = json.loads(bytes(raw).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise BadMessage(f"header is not UTF-8 JSON: {str(error)[:200]}") from None
    if not isinstance(header, dict):
        raise BadMessage("header must be a JSON object")
    return header


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a header")


def peek_id(header: Dict[str, Any]) -> Tuple[str, str]:
    """The request id and op of a header, as far as they are usable, for error replies."""
    request_id = header.get("id")
    op = header.get("op")
    return (
        request_id if isinstance(request_id, str) and _ID.fullmatch(request_id) else "",
        op if isinstance(op, str) and op in OPS else "",
    )


def decode_request(parts: Sequence[Buffer], limits: Limits = Limits()) -> Request:
    """Decode a request's parts (header, then buffers; no routing envelope).

    Raises a ``ProtocolError`` (bad_message, protocol_version, unknown_op, bad_buffer,
    bad_dtype, too_large) or ``BadParameter`` (bad_parameter); nothing else escapes.
    """
    if not parts:
        raise BadMessage("empty message: a JSON header is required")
    header = parse_header(parts[0], limits)
    version = header.get("protocol")
    if not _is_int(version) or version != PROTOCOL_VERSION:
        raise VersionMismatch(f"client speaks protocol {_shown(version)}, this server speaks {PROTOCOL_VERSION}; "
                              "update the client or the server so they match")
    request = Request(op=_op(header), id=_text(header, "id", pattern=_ID), buffers=list(parts[1:]))
    if request.op == "hello":
        request.client = _text(header, "client", max_chars=200) if header.get("client") is not None else ""
    if request.op in ("open_clip", "frame", "close_clip"):
        request.clip = _text(header, "clip", pattern=_ID)
    if request.op == "open_clip":
        request.settings = decode_settings(header.get("settings", {}))
    elif request.op == "plan_render":
        request.plan = _decode_plan(header)
    elif request.op == "try_ratios":
        request.ratios = _decode_ratios(header)
    elif request.op == "attach_shared":
        request.attach = SharedAttach(_integer(header, "pid", 1, MAX_PID), _integer(header, "fd", 0, MAX_FD),
                                      _integer(header, "bytes", SHARED_HEADER_BYTES + 1, MAX_SHARED_BYTES),
                                      _token(header))
    elif request.op == "detach_shared":
        request.segment = _text(header, "segment", pattern=_ID)
        request.token = _token(header)
    if request.op == "frame":
        _decode_frame(header, request, limits)
    elif request.buffers:
        raise BadBuffer(f"{request.op} takes no buffers; {len(request.buffers)} were sent")
    return request


def _op(header: Dict[str, Any]) -> str:
    op = header.get("op")
    if not isinstance(op, str):
        raise BadMessage("header field 'op' must be a string")
    if op not in OPS:
        raise UnknownOperation(f"unknown operation {op[:64]!r}; known: {', '.join(OPS)}")
    return op


def _decode_frame(header: Dict[str, Any], request: Request, limits: Limits) -> None:
    request.frame = _integer(header, "frame")
    request.strict = _boolean(header, "strict", False)
    request.refresh = _boolean(header, "refresh", False)
    request.write = _output_names(header.get("write"))
    if header.get("shared_outputs") is not None:
        request.shared_outputs = decode_region(header["shared_outputs"])
    source = header.get("source")
    if source is None:
        if request.buffers:
            raise BadBuffer("buffers were sent but 'source' names no inline image")
        return
    if not isinstance(source, dict) or len(source) != 1 or not ({"path", "inline", "shared"} & set(source)):
        raise BadMessage("'source' must be {\"path\": ...}, {\"inline\": {...}} or {\"shared\": {...}}")
    if "shared" in source:
        if request.buffers:
            raise BadBuffer("a frame in shared memory takes no buffers")
        request.shared = decode_shared_image(source["shared"], limits)
        if request.shared_outputs is not None and request.shared.region.overlaps(request.shared_outputs):
            raise BadBuffer("the frame's shared-memory region and its outputs' region overlap")
        return
    if "path" in source:
        request.source_path = _path(source, "path")
        if request.buffers:
            raise BadBuffer("a frame given by path takes no buffers")
        return
    request.inline = decode_inline(source["inline"], len(request.buffers), limits)
    actual = len(request.buffers[request.inline.buffer])
    if actual != request.inline.nbytes:
        raise BadBuffer(f"inline buffer holds {actual} bytes but shape {list(request.inline.shape)} "
                        f"{request.inline.dtype} needs {request.inline.nbytes}")


def _output_names(value: Any) -> Optional[Tuple[str, ...]]:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) and name in OUTPUT_NAMES for name in value) \
            or len(set(value)) != len(value):
        raise BadMessage(f"field 'write' must be a list of distinct output names from {', '.join(OUTPUT_NAMES)}")
    return tuple(value)


def decode_inline(spec: Any, buffer_count: int, limits: Limits, channel_counts: Tuple[int, ...] = (3, 4)
                  ) -> InlineImage:
    """Validate an inline image description against the buffers present and the limits.

    Frames sent to the server are RGB or RGBA; replies also carry one-channel alpha."""
    if not isinstance(spec, dict):
        raise BadMessage("'inline' must be an object with buffer, shape and dtype")
    shape, dtype = _image(spec, limits, channel_counts)
    image = InlineImage(_integer(spec, "buffer", 0, 64), shape, dtype)
    if image.buffer >= buffer_count:
        raise BadBuffer(f"inline image names buffer {image.buffer} but {buffer_count} were sent")
    if buffer_count != 1:
        raise BadBuffer(f"a frame takes exactly one buffer; {buffer_count} were sent")
    return image


def decode_shared_image(spec: Any, limits: Limits, channel_counts: Tuple[int, ...] = (3, 4)) -> SharedImage:
    """Validate a shared-memory image description (segment, offset, shape, dtype) against the
    limits; whether the segment holds it is the server's check."""
    if not isinstance(spec, dict):
        raise BadMessage("'shared' must be an object with segment, offset, shape and dtype")
    shape, dtype = _image(spec, limits, channel_counts)
    return SharedImage(_text(spec, "segment", pattern=_ID), _integer(spec, "offset", SHARED_HEADER_BYTES,
                                                                      MAX_SHARED_BYTES), shape, dtype)


def decode_region(spec: Any) -> SharedRegion:
    """Validate ``shared_outputs`` (segment, offset, bytes)."""
    if not isinstance(spec, dict):
        raise BadMessage("'shared_outputs' must be an object with segment, offset and bytes")
    return SharedRegion(_text(spec, "segment", pattern=_ID),
                        _integer(spec, "offset", SHARED_HEADER_BYTES, MAX_SHARED_BYTES),
                        _integer(spec, "bytes", 1, MAX_SHARED_BYTES))


def _image(spec: Dict[str, Any], limits: Limits, channel_counts: Tuple[int, ...]) -> Tuple[Tuple[int, int, int], str]:
    """The shape and dtype of an image description, checked against the limits."""
    dtype = spec.get("dtype")
    if not isinstance(dtype, str) or dtype not in INLINE_DTYPES:
        raise BadDtype(f"inline dtype {_shown(dtype)} is not one of {', '.join(INLINE_DTYPES)}")
    shape = spec.get("shape")
    if not isinstance(shape, list) or len(shape) != 3 or not all(_is_int(v) for v in shape):
        raise BadMessage("inline 'shape' must be [height, width, channels] integers")
    height, width, channels = shape
    if channels not in channel_counts:
        raise BadMessage(f"inline image has {_shown(channels)} channels; expected one of {channel_counts}")
    if not (1 <= height <= limits.max_image_side and 1 <= width <= limits.max_image_side):
        raise TooLarge(f"inline image {_shown(width)}x{_shown(height)} is outside 1..{limits.max_image_side} per side")
    if height * width > limits.max_image_pixels:
        raise TooLarge(f"inline image {width}x{height} is over {limits.max_image_pixels} pixels")
    nbytes = height * width * channels * INLINE_DTYPES[dtype]
    if nbytes > limits.max_buffer_bytes:
        raise TooLarge(f"inline image needs {nbytes} bytes; the limit is {limits.max_buffer_bytes}")
    return (height, width, channels), dtype


def decode_settings(raw: Any) -> Dict[str, Any]:
    """Clip settings with defaults filled in; raises BadMessage or BadParameter."""
    if not isinstance(raw, dict):
        raise BadMessage("'settings' must be a JSON object")
    known = {parameter.name: parameter for parameter in CLIP_PARAMETERS}
    unknown = sorted(str(name)[:40] for name in set(raw) - set(known))
    if unknown:
        raise BadParameter(f"unknown clip setting(s) {', '.join(map(repr, unknown))[:200]}; "
                           f"known: {', '.join(known)}")
    settings = {name: check_parameter(parameter, raw.get(name, parameter.default)) for name, parameter in known.items()}
    if not any(settings["outputs"].values()) and not settings["inline_outputs"]:
        raise BadParameter("the clip writes nothing: name an output plate pattern or ask for inline outputs")
    return settings


def check_parameter(parameter: Parameter, value: Any) -> Any:
    """``value`` checked against its table entry (numbers as float); raises BadParameter."""
    if value is None and parameter.nullable:
        return None
    kind, name = parameter.kind, parameter.name
    if kind == "choice":
        if not isinstance(value, str) or value not in parameter.choices:
            raise BadParameter(f"{name} {_shown(value)} is not one of {', '.join(parameter.choices)}")
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadParameter(f"{name} must be a number, not {_shown(value)}")
        low, high = parameter.minimum, parameter.maximum
        if not (low is None or value > low) or not (high is None or value <= high):
            raise BadParameter(f"{name} {_shown(value)} must be in ({low}, {high}]")
        value = float(value)
    elif kind == "integer":
        if not _is_int(value) or not -MAX_FRAME_NUMBER <= value <= MAX_FRAME_NUMBER:
            raise BadParameter(f"{name} must be a whole number in {-MAX_FRAME_NUMBER}..{MAX_FRAME_NUMBER}, "
                               f"not {_shown(value)}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise BadParameter(f"{name} must be true or false, not {_shown(value)}")
    elif kind == "outputs":
        value = _outputs(value)
    else:  # path, pattern or text
        if not isinstance(value, str) or not _fits(value, MAX_PATH_CHARS):
            raise BadParameter(f"{name} must be a text of 1..{MAX_PATH_CHARS} characters without NUL or unpaired "
                               f"surrogates, not {_shown(value)}")
    return value


def _outputs(value: Any) -> Dict[str, Optional[str]]:
    if not isinstance(value, dict) or not all(isinstance(name, str) and name in OUTPUT_NAMES for name in value):
        raise BadParameter("outputs must be an object with alpha, foreground and/or rgba patterns")
    outputs: Dict[str, Optional[str]] = {}
    for name in OUTPUT_NAMES:
        pattern = value.get(name)
        if pattern is not None and (not isinstance(pattern, str) or not _fits(pattern, MAX_PATH_CHARS)):
            raise BadParameter(f"the {name} output must be a path pattern of 1..{MAX_PATH_CHARS} characters")
        outputs[name] = pattern
    return outputs


def _decode_plan(header: Dict[str, Any]) -> RenderPlanRequest:
    frames = _frames(header)
    shot_start = header.get("shot_start")
    return RenderPlanRequest(
        source=_path(header, "source"), frames=frames, outputs=_outputs(header.get("outputs", {})),
        resume=_boolean(header, "resume", False),
        shot_start=None if shot_start is None else _integer(header, "shot_start"),
        preroll=_integer(header, "preroll", 0, MAX_PREROLL) if "preroll" in header else 32,
        resume_limit=_integer(header, "resume_limit", 0, MAX_PREROLL) if "resume_limit" in header else 1000)


def _decode_ratios(header: Dict[str, Any]) -> RatiosRequest:
    frames = _frames(header)
    if frames is None:
        raise BadMessage("field 'frames' must name the stretch to judge, e.g. \"1013-1020\"")
    ratios = header.get("ratios", list(TRY_RATIOS))
    if not isinstance(ratios, list) or not 0 < len(ratios) <= TRY_RATIOS_MAX:
        raise BadParameter(f"ratios must be a list of 1..{TRY_RATIOS_MAX} numbers in (0, 1], not {_shown(ratios)}")
    ratios = [check_parameter(PARAMETERS_BY_NAME["downsample_ratio"], ratio) for ratio in ratios]
    if None in ratios:
        raise BadParameter("ratios must be numbers in (0, 1]; auto is not one (try_ratios reports what auto picks)")
    raw = header.get("settings", {})
    if not isinstance(raw, dict):
        raise BadMessage("'settings' must be a JSON object")
    unknown = sorted(str(name)[:40] for name in set(raw) - set(TRY_RATIOS_SETTINGS))
    if unknown:
        raise BadParameter(f"try_ratios takes no setting(s) {', '.join(map(repr, unknown))[:200]}; "
                           f"it takes: {', '.join(TRY_RATIOS_SETTINGS)}")
    settings = {name: check_parameter(PARAMETERS_BY_NAME[name], raw.get(name, PARAMETERS_BY_NAME[name].default))
                for name in TRY_RATIOS_SETTINGS}
    sheet = header.get("sheet")
    return RatiosRequest(
        source=_path(header, "source"), frames=frames, ratios=ratios,
        preroll=_integer(header, "preroll", 0, TRY_RATIOS_MAX_FRAMES) if "preroll" in header else TRY_RATIOS_PREROLL,
        sheet=None if sheet is None else _path(header, "sheet"), settings=settings)


def _frames(header: Dict[str, Any]) -> Union[None, str, List[int]]:
    frames = header.get("frames")
    if isinstance(frames, str):
        if not _fits(frames, MAX_RANGE_CHARS):
            raise BadMessage(f"field 'frames' must be a range of 1..{MAX_RANGE_CHARS} characters without NUL or "
                             "unpaired surrogates")
    elif isinstance(frames, list):
        if not 0 < len(frames) <= MAX_LISTED_FRAMES or not all(
                _is_int(f) and -MAX_FRAME_NUMBER <= f <= MAX_FRAME_NUMBER for f in frames):
            raise BadMessage(f"field 'frames' must list 1..{MAX_LISTED_FRAMES} whole frame numbers")
    elif frames is not None:
        raise BadMessage("field 'frames' must be a range (\"1001-1100\"), a list of frames, or null")
    return frames


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A short, safe rendering of a client's value for an error message."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        # RecursionError: a value nested almost as deep as the parser allows, met here a few
        # stack frames deeper than where it was parsed.
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _integer(obj: Dict[str, Any], key: str, low: int = -MAX_FRAME_NUMBER, high: int = MAX_FRAME_NUMBER) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadMessage(f"field {key!r} must be an integer in {low}..{high}, not {_shown(value)}")
    return value


def _boolean(obj: Dict[str, Any], key: str, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise BadMessage(f"field {key!r} must be true or false, not {_shown(value)}")
    return value


def _text(obj: Dict[str, Any], key: str, *, pattern: Optional[re.Pattern[str]] = None, max_chars: int = 64) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not _fits(value, max_chars) or (pattern and not pattern.fullmatch(value)):
        allowed = " of letters, digits and ._:-" if pattern else ""
        raise BadMessage(f"field {key!r} must be a string of 1..{max_chars} characters{allowed} (no NUL or unpaired "
                         "surrogates)")
    return value


def _token(obj: Dict[str, Any]) -> str:
    value = obj.get("token")
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        # Not echoed: a token in capitals is still the segment's, and refusals are logged.
        raise BadMessage("field 'token' must be the segment's 16-byte token as 32 lowercase hex digits")
    return value


def _path(obj: Dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not _fits(value, MAX_PATH_CHARS):
        raise BadMessage(f"field {key!r} must be a path of 1..{MAX_PATH_CHARS} characters without NUL or "
                         "unpaired surrogates")
    return value


def _fits(text: str, max_chars: int) -> bool:
    """1..max_chars characters, none of them NUL or a lone surrogate."""
    return 0 < len(text) <= max_chars and "\0" not in text and not _SURROGATE.search(text)
