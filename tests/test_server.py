"""A real bridge process on loopback, as a TD or a host uses it: plates identical to the
in-process render (alpha, foreground, RGBA), the render command, inline frames with a real
matte, status, and retries that attach to a run in progress instead of running it twice."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import numpy as np
import pytest

from bridge_server.client import BridgeClient, InlineFrame
from bridge_server.client.render import render_through_bridge
from bridge_server.commands.status import format_status

from .test_server_support import (
    FIRST,
    SIZE,
    RawPeer,
    frame_path,
    has_a_person,
    pixels,
    reference_render,
    same_plate,
    start_bridge,
    write_shot,
)

FRAMES = list(range(FIRST, FIRST + 12))


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("bridge"))
    pattern = write_shot(os.path.join(root, "plates"), count=len(FRAMES))
    # A long plate sequence for runs that must stay busy long enough to be caught running.
    long_pattern = write_shot(os.path.join(root, "long"), count=60, name="long")
    reference = reference_render(pattern, FRAMES, os.path.join(root, "reference"), foreground=True, rgba=True)
    return SimpleNamespace(root=root, pattern=pattern, long=long_pattern, reference=reference)


@pytest.fixture(scope="module")
def bridge(shot):
    server = start_bridge(shot.root, "--inline-wait", "1.0", "--workers", "1", "--preroll-limit", "60")
    yield server
    assert server.stop() == 0, server.log_tail()


@pytest.fixture
def client(bridge):
    with BridgeClient(bridge.address, timeout=60, name="pytest") as connection:
        yield connection


def output(shot, name, kind="alpha"):
    return os.path.join(shot.root, name, f"{kind}.####.exr")


def clip_status(client, clip_id):
    return next(clip for clip in client.status()["clips"] if clip["clip"] == clip_id)


def test_the_shot_has_a_person_in_every_frame_so_these_tests_check_real_mattes(shot):
    assert all(has_a_person(pixels(frame_path(shot.reference["alpha"], frame))) for frame in FRAMES)


def test_a_sequential_render_through_the_bridge_matches_the_in_process_render_bit_for_bit(shot, bridge):
    seen = []
    outputs = {kind: output(shot, "render", kind) for kind in ("alpha", "foreground", "rgba")}
    summary = render_through_bridge(bridge.address, shot.pattern, f"{FIRST}-{FRAMES[-1]}",
                                    progress=lambda done, total, result: seen.append((done, total)), **outputs)
    assert [result.frame for result in summary.results] == FRAMES
    assert all(result.how == "sequence" and result.exact for result in summary.results)
    for kind, pattern in outputs.items():
        assert all(same_plate(pattern, shot.reference[kind], frame) for frame in FRAMES), kind
    assert seen[-1] == (len(FRAMES), len(FRAMES))
    assert all(set(result.timings) >= {"read", "network", "write", "round_trip"} for result in summary.results)


def test_the_render_command_with_server_writes_the_in_process_plates(shot, bridge, capsys):
    from bridge_server.cli import main

    alpha = output(shot, "command")
    assert main(["render", shot.pattern, "--frames", f"{FIRST}-{FIRST + 3}", "--alpha", alpha,
                 "--server", bridge.address, "--no-progress"]) == 0
    assert "wrote 4 frames through" in capsys.readouterr().out
    assert all(same_plate(alpha, shot.reference["alpha"], frame) for frame in range(FIRST, FIRST + 4))


def test_a_resumed_render_through_the_bridge_equals_the_uninterrupted_one_and_keeps_complete_plates(shot, bridge):
    from bridge_server.cli import main

    alpha, foreground = output(shot, "resumed"), output(shot, "resumed", "foreground")
    assert main(["render", shot.pattern, "--frames", f"{FIRST}-{FIRST + 7}", "--alpha", alpha, "--foreground",
                 foreground, "--server", bridge.address, "--no-progress"]) == 0
    kept = frame_path(alpha, FIRST + 5)
    stamp = os.stat(kept).st_mtime_ns
    os.remove(frame_path(foreground, FIRST + 5))  # a frame half written when the render stopped
    for frame in (FIRST + 6, FIRST + 7):
        os.remove(frame_path(alpha, frame))
        os.remove(frame_path(foreground, frame))
    assert main(["render", shot.pattern, "--frames", f"{FIRST}-{FIRST + 7}", "--alpha", alpha, "--foreground",
                 foreground, "--server", bridge.address, "--no-progress", "--resume"]) == 0
    assert os.stat(kept).st_mtime_ns == stamp  # the complete alpha was not rewritten
    for frame in range(FIRST, FIRST + 8):
        assert same_plate(alpha, shot.reference["alpha"], frame) and \
            same_plate(foreground, shot.reference["foreground"], frame), frame


def test_the_render_command_through_the_bridge_imports_no_torch_numpy_or_engine(shot, bridge, tmp_path):
    import subprocess
    import sys

    code = ("import sys; from bridge_server.cli import main; code = main(sys.argv[1:]); "
            "heavy = [m for m in ('torch', 'numpy', 'OpenImageIO') if m in sys.modules]; "
            "print('heavy:', heavy); sys.exit(code or (3 if heavy else 0))")
    done = subprocess.run([sys.executable, "-c", code, "render", shot.pattern, "--frames", str(FIRST), "--alpha",
                           output(shot, "light"), "--server", bridge.address, "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "heavy: []" in done.stdout


def inline_frame(shot, frame, dtype="float32", channels=3):
    from rvm_engine.plates import read_plate

    rgb = read_plate(frame_path(shot.pattern, frame)).pixels
    if channels == 4:
        rgb = np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=-1)
    data = np.ascontiguousarray(rgb.astype(dtype))
    return InlineFrame(data.tobytes(), data.shape[0], data.shape[1], channels, dtype)


def test_inline_frames_come_back_inline_with_a_real_matte_and_the_in_process_foreground(shot, client):
    clip = client.open_clip(first_frame=FIRST, inline_outputs=True, inline_dtype="float32")
    results = [clip.frame(frame, image=inline_frame(shot, frame, dtype="float16", channels=4))
               for frame in FRAMES[:3]]
    assert [(r.how, r.exact) for r in results] == [("sequence", True)] * 3
    for frame, result in zip(FRAMES, results):
        alpha = result.images["alpha"]
        assert (alpha.height, alpha.width, alpha.channels, alpha.dtype) == (SIZE, SIZE, 1, "float32")
        values = np.frombuffer(alpha.data, np.float32).reshape(SIZE, SIZE)
        assert has_a_person(values)
        # The plates are half floats: the inline float32 alpha rounds to exactly the plate's values.
        reference = pixels(frame_path(shot.reference["alpha"], frame))[..., 0]
        assert np.array_equal(values.astype(np.float16).astype(np.float32), reference)
        fg = np.frombuffer(result.images["foreground"].data, np.float32).reshape(SIZE, SIZE, 3)
        expected = pixels(frame_path(shot.reference["foreground"], frame))
        assert np.array_equal(fg.astype(np.float16).astype(np.float32), expected)
        assert result.plates == {}


def test_a_retry_reaching_a_frame_still_running_attaches_to_it_and_the_frame_runs_once(shot, client):
    from bridge_server.client.protocol import encode, request_header

    # One worker: a clip pre-rolling 50 frames keeps it busy, so the next clip's frame is still
    # queued when its retry arrives (the two requests arrive microseconds apart).
    busy = client.open_clip(source=shot.long, first_frame=FIRST, outputs={"alpha": output(shot, "busy")})
    waiting = client.open_clip(source=shot.pattern, first_frame=FIRST, outputs={"alpha": output(shot, "retried")})
    first_try, second_try, busy_peer = RawPeer(client.address), RawPeer(client.address), RawPeer(client.address)
    try:
        busy_peer.send(encode(request_header("frame", "long-run", clip=busy.id, frame=FIRST + 50)))
        # Sent on three connections, the requests may arrive in any order: the retried frame waits
        # only once the worker is known to be pre-rolling (else it can run and finish first).
        deadline = time.monotonic() + 60
        while not clip_status(client, busy.id)["busy"] and time.monotonic() < deadline:
            time.sleep(0.01)
        message = encode(request_header("frame", "retry-1001", clip=waiting.id, frame=FIRST))
        first_try.send(message)
        second_try.send(message)
        note = second_try.reply(60, skip_pending=False)[0]
        assert note["pending"] is True and note["id"] == "retry-1001"
        second = second_try.reply(120)[0]
        first = first_try.reply(120)[0]
        assert busy_peer.reply(120)[0]["ok"]
    finally:
        for peer in (first_try, second_try, busy_peer):
            peer.close()
    assert first["ok"] and first == second
    assert first["made"]["how"] == "sequence" and first["made"]["exact"] is True
    assert clip_status(client, waiting.id)["frames_run"] == 1


def test_status_shows_models_clips_queue_memory_and_throughput(shot, client):
    clip = client.open_clip(source=shot.pattern, first_frame=FIRST, outputs={"alpha": output(shot, "status")})
    clip.frame(FIRST)
    status = client.status()
    assert {"mobilenetv3"} <= {model["variant"] for model in status["models"]}
    assert status["frames_total"] >= 1 and status["throughput_fps"] > 0
    assert status["memory"]["states"] > 0 and status["dropped"]["states"] == 0
    text = format_status(client.address, status)
    assert clip.id in text and "frames/s" in text and "queue depth" in text and "states at frames 1001" in text
    # The bridge runs in this environment, where PyOpenColorIO is OpenImageIO's OCIO release.
    assert status["colour_road"]["road"] == "direct" and "straight on the frames" in text
    slower = format_status(client.address, dict(status, colour_road={"road": "openimageio", "ocio": "2.5.1",
                                                                     "why": "PyOpenColorIO is not installed"}))
    assert "through OpenImageIO, slower (PyOpenColorIO is not installed)" in slower
    described = client.describe_models()
    parameters = {parameter["name"]: parameter for parameter in described["parameters"]}
    assert "downsample_ratio" in parameters and "dwaa" in parameters["compression"]["choices"]
    assert "ACEScg" in described["colour_spaces"]


def test_compression_and_its_level_reach_the_written_plate_and_unknown_ones_are_refused_at_open(shot, client):
    import OpenImageIO as oiio

    from bridge_server.client.errors import PlateError

    clip = client.open_clip(source=shot.pattern, first_frame=FIRST, compression="dwaa:45",
                            outputs={"alpha": output(shot, "dwaa")})
    plate = clip.frame(FIRST).plates["alpha"]
    spec = oiio.ImageInput.open(plate).spec()
    assert spec.get_string_attribute("compression") == "dwaa"
    assert spec.get_float_attribute("openexr:dwaCompressionLevel") == 45
    with pytest.raises(PlateError, match="zip9000"):
        client.open_clip(source=shot.pattern, compression="zip9000", outputs={"alpha": output(shot, "bogus")})


@pytest.mark.parametrize("address", ["foo", "tcp://127.0.0.1"])
def test_a_malformed_server_address_is_one_clear_line(shot, address, capsys):
    from bridge_server.cli import main

    code = main(["render", shot.pattern, "--frames", str(FIRST), "--alpha", output(shot, "addr"),
                 "--server", address, "--no-progress", "--timeout", "2"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1 and address in err
