"""The bridge protocol's decoder: valid requests parse, everything else gets a stable code.

The contract (``bridge_server/client/protocol.py``): any list of byte parts decodes to a
``Request`` whose every field has the type the server expects, or raises a ``BridgeError``
whose code is one of ``DECODER_CODES``; nothing else escapes (a ``TypeError`` there once took
the whole server down). The fuzz tests at the end draw a fresh seed each run and print it.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import struct
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from hypothesis import HealthCheck, given, note, seed, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from bridge_server.client import errors
from bridge_server.client.errors import (
    CLIENT_CODES,
    ERROR_CODES,
    BridgeError,
    ProtocolError,
    RemoteError,
    error_for_code,
)
from bridge_server.client.parameters import CLIP_PARAMETERS, INLINE_DTYPES, OUTPUT_NAMES, TRY_RATIOS_SETTINGS
from bridge_server.client.protocol import (
    MAX_FD,
    MAX_FRAME_NUMBER,
    MAX_PID,
    MAX_PREROLL,
    MAX_SHARED_BYTES,
    OPS,
    PROTOCOL_VERSION,
    SHARED_HEADER_BYTES,
    Limits,
    Request,
    decode_inline,
    decode_request,
    decode_settings,
    encode,
    parse_header,
    request_header,
    split_envelope,
)

DECODER_CODES = {"bad_message", "protocol_version", "unknown_op", "bad_buffer", "bad_dtype", "too_large",
                 "bad_parameter"}
SMALL = Limits(max_header_bytes=8192, max_buffer_bytes=4096, max_image_side=64, max_image_pixels=32 * 32)

SETTINGS_GIVEN = {
    "variant": "resnet50", "checkpoint": "/models/rvm_resnet50.pth", "refiner": "fast_guided_filter",
    "downsample_ratio": 0.25, "framing": "full-body", "colour_space": "ACEScg", "ocio_config": "ocio://default",
    "to_model": "display:ACES/sRGB", "precision": "float16", "backend": "openvino", "layer": "beauty",
    "source": "/shows/abc/plate.####.exr", "first_frame": 1001,
    "outputs": {"alpha": "/shows/abc/alpha.####.exr", "foreground": "/shows/abc/fg.####.exr",
                "rgba": "/shows/abc/rgba.####.exr"},
    "rgba_premultiplied": False, "pixel_type": "float", "compression": "dwaa:45", "inline_outputs": True,
    "inline_dtype": "float32",
}
INLINE = {"buffer": 0, "shape": [2, 3, 4], "dtype": "float16"}
PIXELS = b"\0" * (2 * 3 * 4 * 2)
SEGMENT = "0123456789abcdef"
TOKEN = "0f" * 16
SHARED = {"segment": SEGMENT, "offset": 4096, "shape": [2, 3, 4], "dtype": "float16"}
SHARED_OUTPUTS = {"segment": SEGMENT, "offset": 8192, "bytes": 4096}

# One valid request of every op (and every way of giving a frame), with its buffers.
BASES: Dict[str, Tuple[Dict[str, Any], List[bytes]]] = {
    "hello": (request_header("hello", "h-1", client="nuke-15.1 RVMMatte"), []),
    "describe_models": (request_header("describe_models", "d-1"), []),
    "status": (request_header("status", "s-1"), []),
    "open_clip": (request_header("open_clip", "o-1", clip="sh010", settings=SETTINGS_GIVEN), []),
    "frame_by_path": (request_header("frame", "f-1", clip="sh010", frame=1001, strict=False, refresh=True,
                                     write=["alpha", "rgba"], source={"path": "/shows/abc/plate.1001.exr"}), []),
    "frame_inline": (request_header("frame", "f-2", clip="sh010", frame=-3, strict=True, write=[],
                                    source={"inline": INLINE}), [PIXELS]),
    "frame_from_sequence": (request_header("frame", "f-3", clip="sh010", frame=1003), []),
    "close_clip": (request_header("close_clip", "c-1", clip="sh010"), []),
    "plan_render_range": (request_header("plan_render", "p-1", source="/shows/abc/plate.####.exr",
                                         frames="1001-1100x2", outputs={"alpha": "/shows/abc/alpha.####.exr"},
                                         resume=True, shot_start=1001, preroll=8, resume_limit=100), []),
    "plan_render_list": (request_header("plan_render", "p-2", source="/shows/abc/plate.####.exr",
                                        frames=[1001, 1005, 1010], outputs={"rgba": "/shows/abc/rgba.####.exr"},
                                        shot_start=None), []),
    "frame_shared": (request_header("frame", "f-4", clip="sh010", frame=1002, source={"shared": SHARED},
                                    shared_outputs=SHARED_OUTPUTS), []),
    "attach_shared": (request_header("attach_shared", "a-1", pid=4242, fd=7, bytes=4096 + 65536, token=TOKEN), []),
    "detach_shared": (request_header("detach_shared", "x-1", segment=SEGMENT, token=TOKEN), []),
    "try_ratios": (request_header("try_ratios", "t-1", source="/shows/abc/plate.####.exr", frames="1013-1020",
                                  ratios=[0.25, 0.4], preroll=4, sheet="/shows/abc/ratios.png",
                                  settings={"variant": "resnet50", "framing": "full-body", "layer": "beauty"}), []),
}

# The review's list of JSON types, each tried in every field of every op, and a string that is
# valid JSON but not valid Unicode (a lone surrogate).
EVERY_JSON_TYPE = [None, True, False, 0, -1, 1.5, 1e308, 10 ** 30, "", "x" * 5000, [], [[[]]], {}, {"a": {}},
                   "/p\ud800.exr"]


def frame_message(height=4, width=5, channels=4, dtype="float16", extra=b""):
    size = height * width * channels * INLINE_DTYPES.get(dtype, 2)
    header = request_header("frame", "r-1", clip="shot010", frame=1001,
                            source={"inline": {"buffer": 0, "shape": [height, width, channels], "dtype": dtype}})
    return encode(header, [b"\0" * size + extra])


def code_of(parts, limits=SMALL):
    with pytest.raises(BridgeError) as caught:
        decode_request(parts, limits)
    return caught.value.code


def message(header: Any, buffers=()) -> List[bytes]:
    """``header`` as the wire carries it; infinities are written 1e999, which JSON parsers read as inf."""
    text = json.dumps(header, allow_nan=True).replace("-Infinity", "-1e999").replace("Infinity", "1e999")
    return [text.encode("utf-8")] + list(buffers)


# -- valid requests ------------------------------------------------------------------------------

def test_an_inline_half_frame_decodes_with_its_shape_and_buffer():
    request = decode_request(frame_message(), SMALL)
    assert (request.op, request.clip, request.frame) == ("frame", "shot010", 1001)
    assert request.inline.shape == (4, 5, 4) and request.inline.dtype == "float16"
    assert len(request.buffers[0]) == request.inline.nbytes == 4 * 5 * 4 * 2
    assert (request.write, request.refresh, request.strict) == (None, False, False)


def test_a_frame_names_the_outputs_to_write_and_asks_to_be_made_again():
    header, _ = BASES["frame_by_path"]
    request = decode_request(message(header), SMALL)
    assert request.write == ("alpha", "rgba") and request.refresh is True
    assert request.source_path == "/shows/abc/plate.1001.exr" and request.inline is None


def test_a_preroll_frame_writes_nothing_and_a_sequence_frame_needs_no_source():
    header, buffers = BASES["frame_inline"]
    assert decode_request(message(header, buffers), SMALL).write == ()
    request = decode_request(message(BASES["frame_from_sequence"][0]), SMALL)
    assert (request.source_path, request.inline, request.frame) == (None, None, 1003)


def test_a_frame_in_shared_memory_names_its_region_and_where_its_outputs_go():
    request = decode_request(message(BASES["frame_shared"][0]), SMALL)
    assert (request.shared.segment, request.shared.offset, request.shared.shape, request.shared.dtype) == \
        (SEGMENT, 4096, (2, 3, 4), "float16")
    assert request.shared.region.nbytes == 2 * 3 * 4 * 2 and request.inline is None and request.buffers == []
    assert (request.shared_outputs.segment, request.shared_outputs.offset, request.shared_outputs.nbytes) == \
        (SEGMENT, 8192, 4096)


def test_a_frame_by_path_or_inline_may_still_ask_for_its_outputs_in_shared_memory():
    header = dict(BASES["frame_inline"][0], shared_outputs=SHARED_OUTPUTS)
    request = decode_request(message(header, [PIXELS]), SMALL)
    assert request.inline is not None and request.shared_outputs.offset == 8192


@pytest.mark.parametrize("outputs_offset, code", [(4096, "bad_buffer"), (4096 + 47, "bad_buffer"), (4096 + 48, None),
                                                  (0, "bad_message"), (4095, "bad_message")])
def test_a_frames_region_and_its_outputs_region_never_overlap_nor_reach_into_the_token_page(outputs_offset, code):
    header = dict(BASES["frame_shared"][0], shared_outputs=dict(SHARED_OUTPUTS, offset=outputs_offset))
    if code is None:
        assert decode_request(message(header), SMALL).shared_outputs.offset == outputs_offset
    else:
        assert code_of(message(header)) == code
    on_token = replaced(BASES["frame_shared"][0], ("source", "shared", "offset"), SHARED_HEADER_BYTES - 1)
    assert code_of(message(on_token)) == "bad_message"


def test_a_frame_in_shared_memory_takes_no_buffers_and_keeps_the_inline_limits():
    assert code_of(message(BASES["frame_shared"][0], [PIXELS])) == "bad_buffer"
    huge = replaced(BASES["frame_shared"][0], ("source", "shared", "shape"), [100000, 100000, 4])
    assert code_of(message(huge)) == "too_large"
    assert code_of(message(replaced(BASES["frame_shared"][0], ("source", "shared", "dtype"), "uint8"))) == "bad_dtype"


def test_attach_shared_names_a_process_an_fd_a_size_and_a_hex_token():
    asked = decode_request(message(BASES["attach_shared"][0]), SMALL).attach
    assert (asked.pid, asked.fd, asked.nbytes, asked.token) == (4242, 7, 4096 + 65536, TOKEN)
    for field, value in [("pid", 0), ("pid", MAX_PID + 1), ("fd", -1), ("fd", MAX_FD + 1), ("bytes", 4096),
                         ("bytes", MAX_SHARED_BYTES + 1), ("token", TOKEN.upper()), ("token", TOKEN[:-2]),
                         ("pid", True)]:
        assert code_of(message(dict(BASES["attach_shared"][0], **{field: value}))) == "bad_message", (field, value)
    detach = decode_request(message(BASES["detach_shared"][0]), SMALL)
    assert (detach.segment, detach.token) == (SEGMENT, TOKEN)


def test_the_artist_names_the_client_in_hello_or_leaves_it_out():
    assert decode_request(message(BASES["hello"][0]), SMALL).client == "nuke-15.1 RVMMatte"
    assert decode_request(message(request_header("hello", "h-2", client=None)), SMALL).client == ""


def test_open_clip_fills_in_defaults_and_keeps_the_output_patterns():
    header = request_header("open_clip", "r-2", clip="shot010",
                            settings={"outputs": {"alpha": "/show/a.####.exr"}, "downsample_ratio": 1})
    request = decode_request(encode(header), SMALL)
    defaults = {p.name: p.default for p in CLIP_PARAMETERS}
    assert request.settings["variant"] == defaults["variant"] == "mobilenetv3"
    assert request.settings["rgba_premultiplied"] is defaults["rgba_premultiplied"] is True
    assert request.settings["colour_space"] is None and request.settings["ocio_config"] is None
    assert request.settings["downsample_ratio"] == 1.0 and isinstance(request.settings["downsample_ratio"], float)
    assert request.settings["outputs"] == {"alpha": "/show/a.####.exr", "foreground": None, "rgba": None}


def test_every_clip_setting_given_comes_back_as_given():
    assert set(SETTINGS_GIVEN) == {p.name for p in CLIP_PARAMETERS}, "a new setting belongs in SETTINGS_GIVEN"
    request = decode_request(message(BASES["open_clip"][0]), SMALL)
    assert request.settings == SETTINGS_GIVEN and request.clip == "sh010"


def test_plan_render_takes_a_range_a_list_or_every_frame():
    plan = decode_request(message(BASES["plan_render_range"][0]), SMALL).plan
    assert (plan.source, plan.frames, plan.resume, plan.shot_start, plan.preroll, plan.resume_limit) == \
        ("/shows/abc/plate.####.exr", "1001-1100x2", True, 1001, 8, 100)
    assert plan.outputs == {"alpha": "/shows/abc/alpha.####.exr", "foreground": None, "rgba": None}
    plan = decode_request(message(BASES["plan_render_list"][0]), SMALL).plan
    assert (plan.frames, plan.shot_start, plan.resume, plan.preroll, plan.resume_limit) == \
        ([1001, 1005, 1010], None, False, 32, 1000)
    every = request_header("plan_render", "p-3", source="/shows/abc/plate.####.exr", frames=None)
    assert decode_request(message(every), SMALL).plan.frames is None


# -- malformed messages ----------------------------------------------------------------------------

def test_a_client_speaking_another_protocol_version_is_told_so():
    header = request_header("hello", "r-3")
    header["protocol"] = PROTOCOL_VERSION - 1
    with pytest.raises(ProtocolError) as caught:
        decode_request(encode(header), SMALL)
    assert caught.value.code == "protocol_version"
    assert str(PROTOCOL_VERSION) in caught.value.message and str(PROTOCOL_VERSION - 1) in caught.value.message


@pytest.mark.parametrize("parts, code", [
    ([], "bad_message"),
    ([b"\xff\xfe not utf-8"], "bad_message"),
    ([b"[1, 2, 3]"], "bad_message"),
    ([b'{"protocol": 2, "id": "x", "op": "frame", "frame": NaN}'], "bad_message"),
    ([b'{"protocol": 2, "id": "x", "op": "status", "x": 1' + b"0" * 5000 + b"}"], "bad_message"),
    ([b"[" * 8000], "bad_message"),
    ([b" " * 9000], "too_large"),
    ([json.dumps({"protocol": 2, "id": "x", "op": "teleport"}).encode()], "unknown_op"),
    ([json.dumps({"protocol": 2, "id": "x", "op": ["hello"]}).encode()], "bad_message"),
    ([json.dumps({"protocol": 2, "id": "bad id!", "op": "hello"}).encode()], "bad_message"),
    ([json.dumps({"protocol": 2, "id": "x", "op": "hello"}).encode(), b"stray"], "bad_buffer"),
    ([json.dumps({"protocol": True, "id": "x", "op": "hello"}).encode()], "protocol_version"),
    ([json.dumps({"protocol": 2.0, "id": "x", "op": "hello"}).encode()], "protocol_version"),
    ([json.dumps({"id": "x", "op": "hello"}).encode()], "protocol_version"),
])
def test_malformed_messages_get_their_error_code(parts, code):
    assert code_of(parts) == code


def test_a_truncated_buffer_is_refused():
    parts = frame_message()
    parts[1] = parts[1][:-1]
    assert code_of(parts) == "bad_buffer"


def test_a_wrong_dtype_is_refused():
    assert code_of(frame_message(dtype="uint8")) == "bad_dtype"


@pytest.mark.parametrize("dtype", [{}, {"a": {}}, {"float16": 2}, [], ["float16"], [[[]]], 16, 2.5, None, True,
                                   "FLOAT16", "float16 "], ids=repr)
def test_a_frame_whose_inline_dtype_is_a_json_object_is_refused_as_bad_dtype(dtype):
    # The review's crash: {} reached `dtype not in INLINE_DTYPES` and raised TypeError (unhashable).
    header = request_header("frame", "r-9", clip="c", frame=1, source={"inline": dict(INLINE, dtype=dtype)})
    with pytest.raises(BridgeError) as caught:
        decode_request(message(header, [PIXELS]), SMALL)
    assert caught.value.code == "bad_dtype"
    assert "float16" in caught.value.message and "float32" in caught.value.message


def test_a_huge_declared_image_is_refused_before_anything_is_allocated():
    header = request_header("frame", "r-4", clip="c", frame=1,
                            source={"inline": {"buffer": 0, "shape": [100000, 100000, 4], "dtype": "float32"}})
    assert code_of(encode(header, [b"tiny"])) == "too_large"


def test_an_image_within_sides_but_over_the_byte_limit_is_too_large():
    limits = Limits(max_header_bytes=4096, max_buffer_bytes=1000, max_image_side=512, max_image_pixels=512 * 512)
    assert code_of(frame_message(height=20, width=20), limits) == "too_large"


def test_a_frame_given_by_path_takes_no_buffers():
    header = request_header("frame", "r-5", clip="c", frame=1, source={"path": "/show/p.0001.exr"})
    assert decode_request(encode(header), SMALL).source_path == "/show/p.0001.exr"
    assert code_of(encode(header, [b"x"])) == "bad_buffer"


@pytest.mark.parametrize("field", ["frame", "source.inline.buffer", "source.inline.shape.0", "source.inline.shape.2"])
@pytest.mark.parametrize("flag", [True, False])
def test_a_frame_number_or_image_size_written_as_true_or_false_is_refused(field, flag):
    # Python's bool is an int; JSON's true is not a frame number.
    header = replaced(BASES["frame_inline"][0], path_of(field), flag)
    assert code_of(message(header, [PIXELS])) == "bad_message"


@pytest.mark.parametrize("field", ["shot_start", "preroll", "resume_limit"])
def test_a_render_plan_number_written_as_true_is_refused(field):
    assert code_of(message(dict(BASES["plan_render_range"][0], **{field: True}))) == "bad_message"


@pytest.mark.parametrize("write", [["matte"], ["alpha", "alpha"], ["Alpha"], [None], [1], [["alpha"]], [{}],
                                   "alpha", {"alpha": True}, True, 0], ids=repr)
def test_a_frame_may_write_only_distinct_known_outputs(write):
    header = dict(BASES["frame_by_path"][0], write=write)
    with pytest.raises(BridgeError) as caught:
        decode_request(message(header), SMALL)
    assert caught.value.code == "bad_message"
    assert all(name in caught.value.message for name in OUTPUT_NAMES)


@pytest.mark.parametrize("frames", [[], [True], [1001, False], [1.5], ["1001"], [[1001]], [None], [{}],
                                    [MAX_FRAME_NUMBER + 1], [10 ** 30], "", "x" * 5000, {}, True, 1001, 1001.0],
                         ids=lambda v: repr(v)[:20])
def test_plan_render_frames_are_a_range_a_list_of_whole_frame_numbers_or_null(frames):
    header = dict(BASES["plan_render_range"][0], frames=frames)
    assert code_of(message(header)) == "bad_message"


@pytest.mark.parametrize("base, field, code", [
    ("open_clip", "settings.source", "bad_parameter"), ("open_clip", "settings.outputs.alpha", "bad_parameter"),
    ("open_clip", "settings.checkpoint", "bad_parameter"), ("open_clip", "settings.ocio_config", "bad_parameter"),
    ("open_clip", "settings.colour_space", "bad_parameter"), ("open_clip", "settings.layer", "bad_parameter"),
    ("frame_by_path", "source.path", "bad_message"), ("plan_render_range", "source", "bad_message"),
    ("plan_render_list", "outputs.rgba", "bad_parameter"), ("plan_render_range", "frames", "bad_message"),
    ("hello", "client", "bad_message"),
])
@pytest.mark.parametrize("text", ["/shows/abc/p\ud800.####.exr", "\udcff", "ACES\udfff"], ids=repr)
def test_a_path_or_name_that_is_not_valid_unicode_is_refused_before_it_reaches_a_file_system(base, field, code, text):
    # JSON's "\ud800" escape decodes to a lone surrogate; a checkpoint path or colour space
    # holding one reached the server's file system and OCIO and came back as internal errors.
    header = replaced(BASES[base][0], path_of(field), text)
    assert code_of(message(header)) == code
    assert decode_request(message(replaced(header, path_of(field), "/shows/abc/p\U0001F3AC.####.exr")), SMALL)


@pytest.mark.parametrize("settings, code", [
    ({"outputs": {"alpha": "/a.####.exr"}, "variant": "vgg"}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "downsample_ratio": 0}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "downsample_ratio": 1.5}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "downsample_ratio": True}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "downsample_ratio": float("inf")}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "colour": "ACEScg"}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "colorspace": "ACEScg"}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "rgba_premultiplied": "yes"}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "colour_space": ""}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "first_frame": 1.5}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "first_frame": True}, "bad_parameter"),
    ({"outputs": {"alpha": "/a\0.exr"}}, "bad_parameter"),
    ({"outputs": {"matte": "/a.####.exr"}}, "bad_parameter"),
    ({"outputs": {}}, "bad_parameter"),
    ({"outputs": {"alpha": None}, "inline_outputs": False}, "bad_parameter"),
    (None, "bad_message"),
    (["variant", "resnet50"], "bad_message"),
])
def test_open_clip_with_bad_settings_is_refused_with_its_code(settings, code):
    header = request_header("open_clip", "r-6", clip="c", settings=settings)
    assert code_of(message(header)) == code


def test_a_bad_setting_is_named_in_the_refusal():
    header = request_header("open_clip", "r-7", clip="c", settings={"inline_outputs": True, "pixel_type": "int"})
    with pytest.raises(BridgeError) as caught:
        decode_request(encode(header), SMALL)
    assert "pixel_type" in caught.value.message and "half" in caught.value.message


# -- every field of every op, given every JSON type ---------------------------------------------------

def field_paths(tree: Any, path: Tuple[Any, ...] = ()) -> Iterator[Tuple[Any, ...]]:
    """Every place in a header a value sits: dict keys and list indices, depth first."""
    children = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, child in children:
        yield path + (key,)
        yield from field_paths(child, path + (key,))


def replaced(tree: Any, path: Tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    tree = copy.copy(tree)
    tree[path[0]] = value if len(path) == 1 else replaced(tree[path[0]], path[1:], value)
    return tree


def dropped(tree: Any, path: Tuple[Any, ...]) -> Any:
    tree = copy.copy(tree)
    if len(path) == 1:
        del tree[path[0]]
    else:
        tree[path[0]] = dropped(tree[path[0]], path[1:])
    return tree


def path_of(dotted: str) -> Tuple[Any, ...]:
    return tuple(int(part) if part.isdigit() else part for part in dotted.split("."))


def dotted(path: Tuple[Any, ...]) -> str:
    return ".".join(map(str, path))


def well_formed(request: Request, limits: Limits = SMALL) -> List[str]:
    """What is wrong with a decoded request, checked apart from the decoder (empty: nothing)."""
    def whole(value, low=-MAX_FRAME_NUMBER, high=MAX_FRAME_NUMBER):
        return type(value) is int and low <= value <= high

    def text(value, most=4096):
        return isinstance(value, str) and 0 < len(value) <= most and "\0" not in value and \
            not any(0xD800 <= ord(c) <= 0xDFFF for c in value)

    def outputs(value):
        return isinstance(value, dict) and tuple(value) == OUTPUT_NAMES and \
            all(v is None or text(v) for v in value.values())

    wrong = []
    if request.op not in OPS or not text(request.id, 64):
        wrong.append(f"op {request.op!r} id {request.id!r}")
    if request.op in ("open_clip", "frame", "close_clip") and not text(request.clip, 64):
        wrong.append(f"clip {request.clip!r}")
    if request.op == "hello" and not (request.client == "" or text(request.client, 200)):
        wrong.append(f"client {request.client!r}")
    if request.op != "frame" and request.buffers:
        wrong.append(f"{len(request.buffers)} buffers on {request.op}")
    if request.op == "open_clip":
        given = request.settings
        if set(given) != {p.name for p in CLIP_PARAMETERS}:
            wrong.append(f"settings {sorted(given)}")
        for p in CLIP_PARAMETERS:
            value = given.get(p.name)
            fits = {"choice": p.choices.__contains__, "number": lambda v: type(v) is float and 0 < v <= 1,
                    "integer": whole, "boolean": lambda v: type(v) is bool, "outputs": outputs}.get(p.kind, text)
            if not ((value is None and p.nullable) or fits(value)):
                wrong.append(f"setting {p.name}={value!r}")
        if outputs(given.get("outputs")) and not any(given["outputs"].values()) and given.get("inline_outputs") \
                is not True:
            wrong.append("a clip that writes nothing")
    if request.op == "frame":
        if not whole(request.frame) or type(request.strict) is not bool or type(request.refresh) is not bool:
            wrong.append(f"frame {request.frame!r} strict {request.strict!r} refresh {request.refresh!r}")
        if request.write is not None and not (isinstance(request.write, tuple) and len(set(request.write)) ==
                                              len(request.write) and set(request.write) <= set(OUTPUT_NAMES)):
            wrong.append(f"write {request.write!r}")
        if request.source_path is not None and (request.inline is not None or not text(request.source_path)):
            wrong.append(f"source path {request.source_path!r} with inline {request.inline!r}")
        regions = [region for region in (request.shared_outputs, request.shared and request.shared.region) if region]
        if not all(text(r.segment, 64) and whole(r.offset, SHARED_HEADER_BYTES, MAX_SHARED_BYTES)
                   and whole(r.nbytes, 1, MAX_SHARED_BYTES) for r in regions):
            wrong.append(f"shared regions {regions!r}")
        if request.shared is not None:
            height, width, channels = request.shared.shape
            if not (all(whole(v, 1, limits.max_image_side) for v in (height, width)) and channels in (3, 4)
                    and height * width <= limits.max_image_pixels and request.shared.dtype in INLINE_DTYPES
                    and request.shared.region.nbytes <= limits.max_buffer_bytes and not request.buffers
                    and request.inline is None and request.source_path is None
                    and not (request.shared_outputs and request.shared_outputs.overlaps(request.shared.region))):
                wrong.append(f"shared {request.shared!r} with outputs {request.shared_outputs!r}")
        if request.inline is not None:
            height, width, channels = request.inline.shape
            if not (all(whole(v, 1, limits.max_image_side) for v in (height, width)) and channels in (3, 4)
                    and height * width <= limits.max_image_pixels and request.inline.dtype in INLINE_DTYPES
                    and request.inline.buffer == 0 and len(request.buffers) == 1
                    and len(request.buffers[0]) == height * width * channels * INLINE_DTYPES[request.inline.dtype]
                    <= limits.max_buffer_bytes):
                wrong.append(f"inline {request.inline!r} with buffers of {[len(b) for b in request.buffers]}")
        elif request.buffers:
            wrong.append("buffers without an inline source")
    if request.op == "plan_render":
        plan = request.plan
        frames_fit = plan is not None and (plan.frames is None or text(plan.frames) or (
            isinstance(plan.frames, list) and 0 < len(plan.frames) and all(whole(f) for f in plan.frames)))
        if not (frames_fit and text(plan.source) and outputs(plan.outputs) and type(plan.resume) is bool
                and (plan.shot_start is None or whole(plan.shot_start))
                and whole(plan.preroll, 0, MAX_PREROLL) and whole(plan.resume_limit, 0, MAX_PREROLL)):
            wrong.append(f"plan {plan!r}")
    if request.op == "attach_shared":
        attach = request.attach
        if not (attach and whole(attach.pid, 1, MAX_PID) and whole(attach.fd, 0, MAX_FD)
                and whole(attach.nbytes, SHARED_HEADER_BYTES + 1, MAX_SHARED_BYTES)
                and re.fullmatch("[0-9a-f]{32}", attach.token)):
            wrong.append(f"attach {attach!r}")
    if request.op == "detach_shared" and not (text(request.segment, 64) and re.fullmatch("[0-9a-f]{32}",
                                                                                          request.token)):
        wrong.append(f"detach {request.segment!r} {request.token!r}")
    if request.op == "try_ratios":
        asked = request.ratios
        frames_fit = asked is not None and (text(asked.frames) or (
            isinstance(asked.frames, list) and 0 < len(asked.frames) and all(whole(f) for f in asked.frames)))
        if not (frames_fit and text(asked.source) and 0 < len(asked.ratios) <= 12
                and all(type(r) is float and 0 < r <= 1 for r in asked.ratios) and whole(asked.preroll, 0, 100)
                and (asked.sheet is None or text(asked.sheet)) and set(asked.settings) == set(TRY_RATIOS_SETTINGS)):
            wrong.append(f"ratios {asked!r}")
    return wrong


def outcome(parts: List[bytes], limits: Limits = SMALL) -> str:
    """``ok:<op>`` or the error code; fails the test for any other exception or a mistyped request."""
    try:
        request = decode_request(parts, limits)
    except BridgeError as error:
        assert error.code in DECODER_CODES, f"{error!r} for {shown(parts)}"
        return error.code
    except Exception as error:
        raise AssertionError(f"{type(error).__name__} escaped the decoder for {shown(parts)}{SEED_NOTE}") from error
    wrong = well_formed(request, limits)
    assert not wrong, f"decoded a mistyped request from {shown(parts)}: {wrong}{SEED_NOTE}"
    return "ok:" + request.op


def shown(parts: List[bytes]) -> str:
    """A message for a failure report: the header (cut at 600 bytes) and the buffers' lengths."""
    if not parts:
        return "no parts"
    return repr(bytes(parts[0][:600])) + (f" + buffers of {[len(p) for p in parts[1:]]} bytes" if parts[1:] else "")


BASE_FIELDS = [(name, path) for name, (header, _) in BASES.items() for path in field_paths(header)]


@pytest.mark.parametrize("base, path", BASE_FIELDS, ids=[f"{name}:{dotted(path)}" for name, path in BASE_FIELDS])
def test_every_field_given_every_json_type_or_left_out_gets_a_request_or_a_documented_code(base, path):
    header, buffers = BASES[base]
    outcomes = {repr(value)[:20]: outcome(message(replaced(header, path, value), buffers))
                for value in EVERY_JSON_TYPE}
    outcomes["left out"] = outcome(message(dropped(header, path), buffers))
    outcomes["unknown field beside"] = outcome(message(replaced(header, path[:-1] + ("zz_unknown",), {}), buffers)) \
        if isinstance(path[-1], str) else "n/a"
    # Every field refuses most types; one that takes them all is not being checked.
    assert sum(not result.startswith("ok") for result in outcomes.values()) >= len(EVERY_JSON_TYPE) // 2, outcomes


@pytest.mark.parametrize("field", ["protocol", "op", "id", "frame", "write", "source", "source.inline.dtype",
                                   "source.inline.shape", "settings.variant", "settings.outputs.alpha",
                                   "frames", "preroll", "shot_start"])
def test_a_value_nested_as_deep_as_the_parser_allows_is_refused_with_a_code(field):
    # json.loads accepts nesting up to the recursion limit; an error message that re-encodes the
    # value a few stack frames deeper used to raise RecursionError. Every depth near the limit is
    # tried, since where the limit bites depends on how deep the caller's stack already is.
    base = {"settings": "open_clip", "frames": "plan_render_range", "preroll": "plan_render_range",
            "shot_start": "plan_render_range"}.get(field.split(".")[0], "frame_inline")
    header, buffers = BASES[base]
    marker = "DEEP-VALUE-HERE"
    template = json.dumps(replaced(header, path_of(field), marker))
    codes = Counter()
    for depth in range(2, sys.getrecursionlimit() + 20):
        nested = "[" * depth + "]" * depth
        codes[outcome([template.replace(f'"{marker}"', nested).encode()] + buffers)] += 1
    assert set(codes) <= DECODER_CODES, codes


# -- error classes -------------------------------------------------------------------------------------

DOCUMENTED_CLASS = {
    "bad_message": errors.BadMessage, "protocol_version": errors.VersionMismatch,
    "unknown_op": errors.UnknownOperation, "bad_buffer": errors.BadBuffer, "bad_dtype": errors.BadDtype,
    "too_large": errors.TooLarge, "bad_parameter": errors.BadParameter,
    "path_outside_roots": errors.PathOutsideRoots, "no_path_mapping": errors.PathNotMapped,
    "unknown_clip": errors.UnknownClip, "clip_conflict": errors.ClipConflict,
    "too_many_clips": errors.TooManyClips, "busy": errors.ServerBusy, "out_of_order": errors.OrderError,
    "plate_error": errors.PlateError, "frame_input": errors.FrameInputError,
    "weights_error": errors.WeightsError, "colour_error": errors.ColourError,
    "shutting_down": errors.ShuttingDown, "internal": errors.InternalError,
    "shared_memory_refused": errors.SharedMemoryRefused, "unknown_segment": errors.UnknownSegment,
    "timeout": errors.BridgeTimeout, "access_refused": errors.AccessRefused,
}


def test_every_error_code_comes_back_to_the_host_as_its_own_class():
    assert set(DOCUMENTED_CLASS) == set(ERROR_CODES) | set(CLIENT_CODES), "a new code needs a class here"
    for code, cls in DOCUMENTED_CLASS.items():
        error = error_for_code(code, "the artist's message")
        assert type(error) is cls, code
        assert (error.code, error.message) == (code, "the artist's message")
        assert str(error) == f"[{code}] the artist's message"


def test_message_errors_are_protocol_errors_and_work_errors_are_remote_errors():
    for code in ERROR_CODES:
        expected = ProtocolError if code in DECODER_CODES - {"bad_parameter"} else RemoteError
        assert isinstance(error_for_code(code, "m"), expected), code
    assert isinstance(error_for_code("timeout", "m"), TimeoutError)


def test_only_a_full_queue_a_full_clip_table_and_a_timeout_are_worth_retrying():
    retryable = {code for code in DOCUMENTED_CLASS if error_for_code(code, "m").retryable}
    assert retryable == {"busy", "too_many_clips", "timeout"}


def test_a_code_from_a_newer_server_keeps_its_code_as_a_remote_error():
    error = error_for_code("quota_exceeded", "over quota")
    assert type(error) is RemoteError and error.code == "quota_exceeded"


def test_envelope_is_split_at_the_empty_delimiter():
    route, body = split_envelope([b"identity", b"", b"{}", b"pixels"])
    assert route == [b"identity", b""] and body == [b"{}", b"pixels"]
    route, body = split_envelope([b"identity", b"{}"])
    assert route == [b"identity"] and body == [b"{}"]


# -- fuzzing: no input makes the decoder crash, hang or hand the server a mistyped request ------------
#
# Each run draws a fresh seed (hypothesis's own "ci" profile would replay one forever) and
# prints it; RVM_BRIDGE_FUZZ_SEED=N replays a run. Failing examples are also kept in the
# example database under .hypothesis/ at the repository root and tried first next time.

FUZZ_SEED = int(os.environ.get("RVM_BRIDGE_FUZZ_SEED") or random.SystemRandom().randrange(2 ** 32))
SEED_NOTE = f" (fuzz seed {FUZZ_SEED}: replay with RVM_BRIDGE_FUZZ_SEED={FUZZ_SEED})"
EXAMPLES = DirectoryBasedExampleDatabase(str(Path(__file__).resolve().parent.parent / ".hypothesis" / "examples"))


def fuzz(max_examples: int):
    """The settings every fuzz test runs under, whatever hypothesis profile is active."""
    chosen = settings(max_examples=max_examples, derandomize=False, database=EXAMPLES, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

    def apply(test):
        # Settings go on after the seed: @seed alone would switch the example database off.
        return chosen(seed(FUZZ_SEED)(test))
    return apply


@pytest.fixture(scope="module", autouse=True)
def announce_fuzz_seed(request):
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\n{__name__}: fuzz seed {FUZZ_SEED} (replay with RVM_BRIDGE_FUZZ_SEED={FUZZ_SEED})")


FIELD_NAMES = sorted({key for header, _ in BASES.values() for path in field_paths(header) for key in path
                      if isinstance(key, str)})
NEAR_VALID = [PROTOCOL_VERSION, 1, 3, "frame", "open_clip", "plan_render", "sh010", "a" * 65, 1001, -1,
              MAX_FRAME_NUMBER, MAX_FRAME_NUMBER + 1, 64, 65, 0, 2, 3, 4, "float16", "float32", "uint8", "alpha",
              "foreground", "rgba", ["alpha"], ["alpha", "alpha"], [2, 3, 4], [2, 3, 3], [2, 3, 1], [100, 1, 3],
              [40, 40, 3], [30, 30, 4], [1, 1, 3, 1], {"path": "/shows/p.exr"}, {"inline": INLINE},
              {"shared": SHARED}, SHARED_OUTPUTS, SEGMENT, TOKEN, 4096, 4095, 8192,
              {"path": "/p", "inline": INLINE}, "/shows/abc/plate.####.exr", "/p\0.exr", "/p\ud800.exr",
              "1001-1100", "mobilenetv3", "half", 0.5, 1e999, -1e999, float("nan"), MAX_PREROLL + 1,
              {"alpha": "/a.####.exr"}, {"alpha": None}]
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10),
                    st.sampled_from(EVERY_JSON_TYPE + NEAR_VALID))
json_values = scalars | st.recursive(
    scalars, lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), children, max_size=4), max_leaves=8)


@st.composite
def mutated_requests(draw) -> List[bytes]:
    """A valid request of some op, often up to four edits anywhere in its header, often other buffers.

    The inline frame, the richest message (and the one that once crashed the server), is drawn
    about half the time, and its image is often resized around the limits.
    """
    header, buffers = BASES[draw(st.sampled_from(sorted(BASES)) | st.just("frame_inline"))]
    for _ in range(draw(st.sampled_from([0, 1, 0, 2, 3, 4]))):
        # Hypothesis leans towards the first of a choice: let that be the innermost, last field.
        paths = list(field_paths(header))[::-1] or [()]
        edit = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add", "op"]))
        if edit == "replace":
            header = replaced(header, draw(st.sampled_from(paths)), draw(json_values))
        elif edit == "drop" and paths != [()]:
            header = dropped(header, draw(st.sampled_from(paths)))
        elif edit == "add" and isinstance(header, dict):
            home = draw(st.sampled_from([()] + [path for path in paths if isinstance(_at(header, path), dict)]))
            key = draw(st.sampled_from(FIELD_NAMES) | st.text(max_size=6))
            header = replaced(header, home + (key,), draw(json_values))
        elif edit == "op" and isinstance(header, dict):
            header = dict(header, op=draw(st.sampled_from(OPS + ("teleport", "Frame", ""))))
    if ("source", "inline", "shape") in field_paths(header) and draw(st.booleans()):
        sides = st.sampled_from([2, SMALL.max_image_side + 1, 0, 33]) | st.integers()
        shape = draw(st.tuples(sides, sides, st.sampled_from([3, 4, 1, 5]) | st.integers()))
        header = replaced(header, ("source", "inline", "shape"), list(shape))
    if draw(st.booleans()):
        size = declared_size(header)
        buffers = draw(st.sampled_from([[b"\0" * size], [], [b"\0" * (size + 1)], buffers * 2])
                       | st.lists(st.binary(max_size=200), max_size=3))
    return message(header, buffers)


def declared_size(header: Any) -> int:
    """The bytes a header's inline image declares, where it declares a sane one (else 0)."""
    try:
        spec = header["source"]["inline"]
        sides = list(spec["shape"]) + [INLINE_DTYPES[spec["dtype"]]]
    except (KeyError, TypeError, ValueError):
        return 0
    if len(sides) != 4 or not all(type(side) is int and 0 <= side <= 1 << 12 for side in sides):
        return 0
    size = sides[0] * sides[1] * sides[2] * sides[3]
    return size if size <= 1 << 16 else 0


def _at(tree: Any, path: Tuple[Any, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def test_thousands_of_mutated_requests_each_get_a_request_or_a_documented_code():
    # Stands alone: it counts its own examples, then checks they reached every code and decoded
    # often (a generator stuck on one refusal would pass the contract vacuously).
    outcomes: Counter = Counter()

    @fuzz(max_examples=2500)
    @given(mutated_requests())
    def decode_one(parts):
        note(SEED_NOTE)
        outcomes[outcome(parts)] += 1

    decode_one()
    assert sum(outcomes.values()) >= 2000, outcomes
    assert DECODER_CODES <= set(outcomes), outcomes
    assert sum(count for result, count in outcomes.items() if result.startswith("ok:")) >= 100, outcomes


def damaged(rng: random.Random, parts: List[bytes]) -> List[bytes]:
    """Damage a valid message the ways a network, a buggy host or an attacker might: bytes."""
    parts = [bytearray(part) for part in parts]
    for _ in range(rng.randint(1, 4)):
        which = rng.randrange(len(parts))
        data = parts[which]
        action = rng.choice(["flip", "cut", "insert", "drop_part", "add_part"])
        if action == "flip" and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif action == "cut" and data:
            del data[rng.randrange(len(data)):]
        elif action == "insert":
            at = rng.randint(0, len(data))
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif action == "drop_part" and len(parts) > 1:
            parts.pop(which)
        elif action == "add_part":
            parts.append(bytearray(rng.randbytes(rng.randint(0, 64))))
    return [bytes(part) for part in parts]


@fuzz(max_examples=500)
@given(st.sampled_from(sorted(BASES)), st.randoms(use_true_random=False))
def test_valid_requests_damaged_byte_by_byte_get_a_request_or_a_documented_code(name, rng):
    header, buffers = BASES[name]
    outcome(damaged(rng, message(header, buffers)))


@fuzz(max_examples=300)
@given(st.lists(st.binary(max_size=96) | st.just(struct.pack("<e", 1.0) * 3), min_size=0, max_size=4))
def test_random_bytes_get_a_request_or_a_documented_code(parts):
    outcome(parts)


def only_documented_codes(call, *args):
    try:
        call(*args)
    except BridgeError as error:
        assert error.code in DECODER_CODES, error
    except Exception as error:
        raise AssertionError(f"{type(error).__name__} escaped {call.__name__}{args!r:.300}{SEED_NOTE}") from error


@fuzz(max_examples=300)
@given(st.binary(max_size=200) | json_values.map(lambda value: message(value)[0]))
def test_any_header_bytes_parse_to_an_object_or_a_documented_code(raw):
    only_documented_codes(parse_header, raw, SMALL)


@fuzz(max_examples=300)
@given(json_values | st.fixed_dictionaries({}, optional={"buffer": json_values, "shape": json_values,
                                                         "dtype": json_values}),
       st.integers(-1, 3), st.sampled_from([(3, 4), (1, 3, 4)]))
def test_any_inline_description_gets_an_image_or_a_documented_code(spec, buffer_count, channel_counts):
    only_documented_codes(decode_inline, spec, buffer_count, SMALL, channel_counts)


@fuzz(max_examples=300)
@given(json_values | st.dictionaries(st.sampled_from(sorted(SETTINGS_GIVEN)), json_values, max_size=6))
def test_any_clip_settings_get_settings_or_a_documented_code(raw):
    only_documented_codes(decode_settings, raw)


def test_a_client_sending_its_token_in_capitals_hears_it_must_be_lowercase_hex_and_the_token_is_not_echoed():
    for op in ("attach_shared", "detach_shared"):
        header = dict(BASES[op][0], token="AB" * 16)
        with pytest.raises(errors.BadMessage, match="32 lowercase hex digits") as caught:
            decode_request(message(header), SMALL)
        assert "AB" * 16 not in caught.value.message
