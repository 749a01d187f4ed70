"""The bridge protocol's decoder: valid requests parse, everything else gets a stable code."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge_server.client.errors import ERROR_CODES, BridgeError, OrderError, ProtocolError, RemoteError, error_for_code
from bridge_server.client.parameters import CLIP_PARAMETERS
from bridge_server.client.protocol import (
    PROTOCOL_VERSION,
    Limits,
    decode_request,
    encode,
    request_header,
    split_envelope,
)

SMALL = Limits(max_header_bytes=4096, max_buffer_bytes=1 << 20, max_image_side=512, max_image_pixels=512 * 512)


def frame_message(height=4, width=5, channels=4, dtype="float16", extra=b""):
    size = height * width * channels * (2 if dtype == "float16" else 4)
    header = request_header("frame", "r-1", clip="shot010", frame=1001,
                            source={"inline": {"buffer": 0, "shape": [height, width, channels], "dtype": dtype}})
    return encode(header, [b"\0" * size + extra])


def code_of(parts, limits=SMALL):
    with pytest.raises(BridgeError) as caught:
        decode_request(parts, limits)
    return caught.value.code


def test_an_inline_half_frame_decodes_with_its_shape_and_buffer():
    request = decode_request(frame_message(), SMALL)
    assert (request.op, request.clip, request.frame) == ("frame", "shot010", 1001)
    assert request.inline.shape == (4, 5, 4) and request.inline.dtype == "float16"
    assert len(request.buffers[0]) == request.inline.nbytes == 4 * 5 * 4 * 2


def test_open_clip_fills_in_defaults_and_keeps_the_output_patterns():
    header = request_header("open_clip", "r-2", clip="shot010",
                            settings={"outputs": {"alpha": "/show/a.####.exr"}, "downsample_ratio": 0.25})
    request = decode_request(encode(header), SMALL)
    defaults = {p.name: p.default for p in CLIP_PARAMETERS}
    assert request.settings["variant"] == defaults["variant"] == "mobilenetv3"
    assert request.settings["downsample_ratio"] == 0.25
    assert request.settings["outputs"] == {"alpha": "/show/a.####.exr", "foreground": None, "rgba": None}


def test_a_client_speaking_another_protocol_version_is_told_so():
    header = request_header("hello", "r-3")
    header["protocol"] = PROTOCOL_VERSION + 1
    with pytest.raises(ProtocolError) as caught:
        decode_request(encode(header), SMALL)
    assert caught.value.code == "protocol_version"
    assert str(PROTOCOL_VERSION) in caught.value.message


@pytest.mark.parametrize("parts, code", [
    ([], "bad_message"),
    ([b"\xff\xfe not utf-8"], "bad_message"),
    ([b"[1, 2, 3]"], "bad_message"),
    ([b'{"protocol": PROTOCOL_VERSION, "id": "x", "op": "frame", "frame": NaN}'], "bad_message"),
    ([b"[" * 4000], "bad_message"),
    ([b" " * 5000], "too_large"),
    ([json.dumps({"protocol": PROTOCOL_VERSION, "id": "x", "op": "teleport"}).encode()], "unknown_op"),
    ([json.dumps({"protocol": PROTOCOL_VERSION, "id": "bad id!", "op": "hello"}).encode()], "bad_message"),
    ([json.dumps({"protocol": PROTOCOL_VERSION, "id": "x", "op": "hello"}).encode(), b"stray"], "bad_buffer"),
    ([json.dumps({"protocol": True, "id": "x", "op": "hello"}).encode()], "protocol_version"),
])
def test_malformed_messages_get_their_error_code(parts, code):
    assert code_of(parts) == code


def test_a_truncated_buffer_is_refused():
    parts = frame_message()
    parts[1] = parts[1][:-1]
    assert code_of(parts) == "bad_buffer"


def test_a_wrong_dtype_is_refused():
    assert code_of(frame_message(dtype="uint8")) == "bad_dtype"


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


@pytest.mark.parametrize("settings, code", [
    ({"outputs": {"alpha": "/a.####.exr"}, "variant": "vgg"}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "downsample_ratio": 0}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "downsample_ratio": 1.5}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "downsample_ratio": True}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "colour": "ACEScg"}, "bad_parameter"),
    ({"outputs": {}}, "bad_parameter"),
    ({"outputs": {"alpha": "/a.####.exr"}, "first_frame": 1.5}, "bad_message"),
    ({"outputs": {"alpha": "/a\0.exr"}}, "bad_message"),
])
def test_open_clip_with_bad_settings_names_the_setting(settings, code):
    header = request_header("open_clip", "r-6", clip="c", settings=settings)
    assert code_of(encode(header)) == code


def test_envelope_is_split_at_the_empty_delimiter():
    route, body = split_envelope([b"identity", b"", b"{}", b"pixels"])
    assert route == [b"identity", b""] and body == [b"{}", b"pixels"]
    route, body = split_envelope([b"identity", b"{}"])
    assert route == [b"identity"] and body == [b"{}"]


def test_every_code_maps_to_a_client_error_class():
    assert isinstance(error_for_code("bad_buffer", "m"), ProtocolError)
    assert isinstance(error_for_code("out_of_order", "m"), OrderError)
    assert isinstance(error_for_code("path_outside_roots", "m"), RemoteError)
    for code in ERROR_CODES:
        assert error_for_code(code, "m").code == code


# -- property tests: no input makes the decoder crash or hang --------------------------------

FUZZ_COUNT = {"examples": 0}


VALID = [
    encode(request_header("hello", "h-1", client="nuke")),
    encode(request_header("status", "s-1")),
    encode(request_header("close_clip", "c-1", clip="shot")),
    encode(request_header("open_clip", "o-1", clip="shot", settings={"outputs": {"alpha": "/a.####.exr"}})),
    encode(request_header("frame", "f-1", clip="shot", frame=7, source={"path": "/p.0007.exr"})),
    frame_message(height=2, width=3, channels=3, dtype="float32"),
]
ODD_VALUES = [None, True, False, 0, -1, 2 ** 70, 1e308, -0.5, "", "x" * 70, "\0", [], [1, 2, 3], {}, {"a": [None]},
              [100000, 100000, 4], {"inline": {"buffer": 9, "shape": [1, 1, 3], "dtype": "float16"}},
              {"path": ""}, {"path": "/p", "inline": {}}]


def mutate(rng, parts):
    """Damage a valid message the ways a network, a buggy host or an attacker might."""
    parts = [bytearray(part) for part in parts]
    for _ in range(rng.randint(1, 4)):
        which = rng.randrange(len(parts))
        data = parts[which]
        action = rng.choice(["flip", "cut", "insert", "drop_part", "add_part", "json", "json"])
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
        elif action == "json" and _json_object(parts[0]):
            header = json.loads(parts[0])
            key = rng.choice(sorted(header) + ["source", "settings", "frame", "protocol", "op"])
            header[key] = rng.choice(ODD_VALUES)
            parts[0] = bytearray(json.dumps(header).encode())
    return [bytes(part) for part in parts]


def _json_object(data):
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:
        return False


def _decode_or_code(parts):
    FUZZ_COUNT["examples"] += 1
    try:
        decode_request(parts, SMALL)
    except BridgeError as error:
        assert error.code in ERROR_CODES


@settings(max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID), st.randoms(use_true_random=False))
def test_mutated_valid_messages_parse_or_get_an_error_code(parts, rng):
    _decode_or_code(mutate(rng, parts))


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=96) | st.just(struct.pack("<e", 1.0) * 3), min_size=0, max_size=4))
def test_random_bytes_parse_or_get_an_error_code(parts):
    _decode_or_code(parts)


def test_the_fuzzing_above_tried_thousands_of_messages():
    # Runs after the two property tests in file order; hypothesis may stop early only when it
    # has exhausted a strategy, which these are far from.
    assert FUZZ_COUNT["examples"] >= 4000, FUZZ_COUNT
