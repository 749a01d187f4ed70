"""A real bridge process on loopback: frame order, plates identical to the in-process render,
the cache, pre-roll, several clients on one clip, and retries that never run a frame twice."""

from __future__ import annotations

import os
import random
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from bridge_server.client import BridgeClient, InlineFrame
from bridge_server.client.render import render_through_bridge
from bridge_server.commands.status import format_status

from .test_server_support import FIRST, RawPeer, frame_path, pixels, reference_render, start_bridge, write_shot

FRAMES = list(range(FIRST, FIRST + 12))


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("bridge"))
    pattern = write_shot(os.path.join(root, "plates"), count=len(FRAMES))
    reference = reference_render(pattern, FRAMES, os.path.join(root, "reference"))
    return SimpleNamespace(root=root, pattern=pattern, reference=reference)


@pytest.fixture(scope="module")
def bridge(shot):
    server = start_bridge(shot.root, "--inline-wait", "1.0", "--preroll-limit", "6", "--cold-preroll", "2")
    yield server
    assert server.stop() == 0, server.log_tail()


@pytest.fixture
def client(bridge):
    with BridgeClient(bridge.address, timeout=60, name="pytest") as connection:
        yield connection


def output(shot, name):
    return os.path.join(shot.root, name, "alpha.####.exr")


def matches_reference(shot, pattern, frame):
    return np.array_equal(pixels(frame_path(pattern, frame)), pixels(frame_path(shot.reference, frame)))


def open_sequence(client, shot, name, **settings):
    settings.setdefault("first_frame", FIRST)
    return client.open_clip(source=shot.pattern, outputs={"alpha": output(shot, name)}, **settings)


def clip_status(client, clip_id):
    return next(clip for clip in client.status()["clips"] if clip["clip"] == clip_id)


def test_a_sequential_render_through_the_bridge_matches_the_in_process_render_bit_for_bit(shot, bridge):
    seen = []
    results = render_through_bridge(bridge.address, shot.pattern, FRAMES, alpha=output(shot, "render"),
                                    progress=lambda done, total, result: seen.append((done, total)))
    assert [result.frame for result in results] == FRAMES
    assert all(result.how == "sequence" and result.exact for result in results)
    assert all(matches_reference(shot, output(shot, "render"), frame) for frame in FRAMES)
    assert seen[-1] == (len(FRAMES), len(FRAMES))
    assert all(set(result.timings) >= {"read", "network", "write", "round_trip"} for result in results)


def test_scrubbing_back_three_frames_serves_the_cached_plate(shot, client):
    clip = open_sequence(client, shot, "scrub")
    list(clip.frames([(frame, None, None) for frame in FRAMES[:5]]))
    plate = frame_path(output(shot, "scrub"), FRAMES[1])
    written = os.stat(plate).st_mtime_ns
    again = clip.frame(FRAMES[1])
    assert (again.how, again.made_as, again.exact) == ("cache", "sequence", True)
    assert again.plates["alpha"] == plate and os.stat(plate).st_mtime_ns == written
    assert [head["frame"] for head in clip_status(client, clip.id)["heads"]] == [FRAMES[4]]


def test_jumping_ahead_prerolls_the_missing_frames_and_says_so(shot, client):
    clip = open_sequence(client, shot, "jump")
    clip.frame(FIRST)
    jumped = clip.frame(FIRST + 4)
    assert (jumped.how, jumped.preroll_frames, jumped.exact) == ("preroll", 3, True)
    assert jumped.timings["preroll"] > 0
    assert matches_reference(shot, output(shot, "jump"), FIRST + 4)
    assert not os.path.exists(frame_path(output(shot, "jump"), FIRST + 2))


def test_a_jump_past_the_preroll_limit_starts_cold_a_fixed_number_of_frames_before(shot, client):
    clip = open_sequence(client, shot, "far")
    far = clip.frame(FIRST + 11)
    assert (far.how, far.preroll_frames, far.exact) == ("preroll", 2, False)


def test_going_back_past_the_held_state_without_a_plate_prerolls_again(shot, client):
    clip = open_sequence(client, shot, "back")
    assert clip.frame(FIRST + 5).how == "preroll"
    back = clip.frame(FIRST + 2)
    assert (back.how, back.preroll_frames, back.exact) == ("preroll", 2, True)
    assert matches_reference(shot, output(shot, "back"), FIRST + 2)


def test_strict_order_refuses_a_frame_that_would_need_preroll(shot, client):
    from bridge_server.client.errors import OrderError

    clip = open_sequence(client, shot, "strict")
    assert clip.frame(FIRST, strict=True).how == "sequence"
    with pytest.raises(OrderError):
        clip.frame(FIRST + 3, strict=True)
    assert clip.frame(FIRST + 1, strict=True).exact


def inline_frame(shot, frame, dtype="float32", channels=3):
    from rvm_engine.plates import read_plate

    rgb = read_plate(frame_path(shot.pattern, frame)).pixels
    if channels == 4:
        rgb = np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=-1)
    data = np.ascontiguousarray(rgb.astype(dtype))
    return InlineFrame(data.tobytes(), data.shape[0], data.shape[1], channels, dtype)


def test_four_clients_sending_one_clip_shuffled_get_every_frame_labelled(shot, bridge):
    frames = FRAMES[:10]
    shuffled = frames[:]
    random.Random(7).shuffle(shuffled)
    results, errors = [], []
    settings = {"first_frame": FIRST, "outputs": {"alpha": output(shot, "shuffled")}}

    def send(mine):
        try:
            with BridgeClient(bridge.address, timeout=60) as client:
                clip = client.open_clip("shuffled-clip", **settings)
                for frame in mine:
                    results.append((frame, clip.frame(frame, image=inline_frame(shot, frame))))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=send, args=(shuffled[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert sorted(frame for frame, _ in results) == frames
    assert all(result.frame == frame and result.clip == "shuffled-clip" for frame, result in results)
    assert all(result.how in ("sequence", "cold") for _, result in results)
    exact = [frame for frame, result in results if result.exact]
    assert FIRST in exact
    assert all(matches_reference(shot, output(shot, "shuffled"), frame) for frame in exact)


def test_inline_frames_can_come_back_inline_as_float32_buffers(shot, client):
    clip = client.open_clip(first_frame=FIRST, inline_outputs=True, inline_dtype="float32")
    result = clip.frame(FIRST, image=inline_frame(shot, FIRST, dtype="float16", channels=4))
    alpha = result.images["alpha"]
    assert (alpha.height, alpha.width, alpha.channels, alpha.dtype) == (64, 64, 1, "float32")
    values = np.frombuffer(alpha.data, np.float32).reshape(64, 64)
    reference = pixels(frame_path(shot.reference, FIRST))[..., 0]
    assert np.array_equal(values.astype(np.float16).astype(np.float32), reference)
    assert result.plates == {}
    # The foreground comes back too, with no foreground plate asked for, in the plate's space:
    # where the matte is empty (this tiny crop holds no person) it is the plate itself.
    fg = result.images["foreground"]
    assert (fg.height, fg.width, fg.channels, fg.dtype) == (64, 64, 3, "float32")
    foreground = np.frombuffer(fg.data, np.float32).reshape(64, 64, 3)
    sent = inline_frame(shot, FIRST, dtype="float16", channels=4)
    plate = np.frombuffer(sent.data, np.float16).reshape(64, 64, 4)[..., :3].astype(np.float32)
    assert values.max() == 0.0 and np.array_equal(foreground, plate)


def test_a_request_retried_after_a_time_out_returns_the_same_plate_and_runs_once(shot, client):
    from bridge_server.client.protocol import encode, request_header

    clip = open_sequence(client, shot, "retry")
    message = encode(request_header("frame", "retry-1001", clip=clip.id, frame=FIRST))
    gone = RawPeer(client.address)
    gone.send(message)
    gone.close()  # the client timed out and dropped its socket, the Lazy Pirate way
    first_try, second_try = RawPeer(client.address), RawPeer(client.address)
    first_try.send(message)
    first = first_try.reply(30)
    second_try.send(message)
    second = second_try.reply(30)
    first_try.close()
    second_try.close()
    assert first[0]["ok"] and first[0]["plates"] == second[0]["plates"]
    assert first[0]["made"] == second[0]["made"] == {"how": "sequence", "preroll_frames": 0, "exact": True,
                                                     "made_as": "sequence"}
    status = clip_status(client, clip.id)
    assert status["frames_run"] == 1 and [head["frame"] for head in status["heads"]] == [FIRST]


def test_a_client_with_a_tiny_timeout_retries_until_answered_without_running_frames_twice(shot, bridge):
    # Two retries in a row at most: the server's "still running" answers keep an impatient
    # client from giving up on a frame that is merely slower than its timeout.
    with BridgeClient(bridge.address, timeout=0.02, retries=2) as impatient:
        clip = open_sequence(impatient, shot, "impatient")
        results = list(clip.frames([(frame, None, None) for frame in FRAMES[:4]], window=2))
        assert [(r.frame, r.how, r.exact) for r in results] == [(f, "sequence", True) for f in FRAMES[:4]]
        assert clip_status(impatient, clip.id)["frames_run"] == 4
    assert all(matches_reference(shot, output(shot, "impatient"), frame) for frame in FRAMES[:4])


def test_status_shows_models_clips_queue_and_throughput(shot, client):
    clip = open_sequence(client, shot, "status")
    clip.frame(FIRST)
    status = client.status()
    assert {"mobilenetv3"} <= {model["variant"] for model in status["models"]}
    assert status["frames_total"] >= 1 and status["throughput_fps"] > 0
    text = format_status(client.address, status)
    assert clip.id in text and "frames/s" in text and "queue depth" in text
    described = client.describe_models()
    assert "downsample_ratio" in {parameter["name"] for parameter in described["parameters"]}
    assert "ACEScg" in described["colour_spaces"]


def test_the_render_command_with_server_writes_the_in_process_plates(shot, bridge, capsys):
    from bridge_server.cli import build_parser

    alpha = output(shot, "command")
    args = build_parser().parse_args(["render", shot.pattern, "--frames", f"{FIRST}-{FIRST + 3}", "--alpha", alpha,
                                      "--server", bridge.address, "--no-progress"])
    assert args.func(args) == 0
    assert "wrote 4 frames through" in capsys.readouterr().out
    assert all(matches_reference(shot, alpha, frame) for frame in range(FIRST, FIRST + 4))


def test_a_clip_evicted_under_the_memory_budget_rewarms_by_preroll_on_its_next_frame(shot):
    server = start_bridge(shot.root, "--memory-budget", "1K")
    try:
        with BridgeClient(server.address, timeout=60) as client:
            first = open_sequence(client, shot, "evicted")
            list(first.frames([(frame, None, None) for frame in FRAMES[:3]]))
            second = open_sequence(client, shot, "other")
            list(second.frames([(frame, None, None) for frame in FRAMES[:2]]))
            # A recurrent state is far over 1 KiB: idle clips lose theirs.
            evicted = clip_status(client, first.id)
            assert evicted["memory_bytes"] == 0 and evicted["heads"] == []
            warm = first.frame(FRAMES[3])
            assert (warm.how, warm.preroll_frames, warm.exact) == ("preroll", 3, True)
            assert matches_reference(shot, output(shot, "evicted"), FRAMES[3])
    finally:
        assert server.stop() == 0, server.log_tail()


def test_the_render_command_with_server_refuses_what_the_in_process_render_refuses(shot, bridge, capsys):
    from bridge_server.cli import main

    before = {frame: pixels(frame_path(shot.pattern, frame)) for frame in FRAMES[:2]}
    over_source = shot.pattern.replace("####", "%04d")  # the source plates, spelled another way
    no_token = os.path.join(shot.root, "one", "alpha.exr")
    for target, message in [(over_source, "source plate"), (no_token, "no frame token")]:
        code = main(["render", shot.pattern, "--frames", f"{FIRST}-{FIRST + 1}", "--alpha", target,
                     "--server", bridge.address, "--no-progress"])
        assert code == 1 and message in capsys.readouterr().err
    assert all(np.array_equal(pixels(frame_path(shot.pattern, f)), before[f]) for f in before)
    assert not os.path.exists(no_token)


def test_a_host_asking_to_write_over_the_source_gets_a_plate_error_and_the_source_survives(shot, client):
    from bridge_server.client.errors import RemoteError

    before = pixels(frame_path(shot.pattern, FIRST))
    clip = client.open_clip(source=shot.pattern, first_frame=FIRST, outputs={"alpha": shot.pattern.replace("####", "$F4")})
    with pytest.raises(RemoteError) as raised:
        clip.frame(FIRST)
    assert raised.value.code == "plate_error" and "source plate" in raised.value.message
    assert np.array_equal(pixels(frame_path(shot.pattern, FIRST)), before)


def test_compression_levels_reach_the_server_and_unknown_ones_are_refused_when_the_clip_opens(shot, client):
    from bridge_server.client.errors import RemoteError

    clip = open_sequence(client, shot, "dwaa", compression="dwaa:45")
    assert clip.frame(FIRST).how in ("sequence", "preroll")
    with pytest.raises(RemoteError) as raised:
        open_sequence(client, shot, "bogus", compression="zip9000")
    assert raised.value.code == "plate_error" and "zip9000" in raised.value.message


@pytest.mark.parametrize("address", ["foo", "tcp://127.0.0.1"])
def test_a_malformed_server_address_is_one_clear_line(shot, address, capsys):
    from bridge_server.cli import main

    code = main(["render", shot.pattern, "--frames", str(FIRST), "--alpha", output(shot, "addr"),
                 "--server", address, "--no-progress", "--timeout", "2"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1 and address in err
