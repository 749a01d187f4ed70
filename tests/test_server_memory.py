"""The memory budget never costs a live matte: cached inline outputs go first, then the states of
idle clips; a clip being rendered keeps its state, and status says what was dropped."""

from __future__ import annotations

import os

import numpy as np

from bridge_server.client import BridgeClient, InlineFrame
from bridge_server.client.protocol import encode, request_header

from .test_server_support import (
    FIRST,
    SIZE,
    RawPeer,
    reference_render,
    same_plate,
    shot_frames,
    start_bridge,
    to_linear,
    write_shot,
)


def state_bytes() -> int:
    """What one clip's recurrent state holds for the test shot's frames (measured, not assumed)."""
    from rvm_engine.session import MattingSession
    from rvm_engine.weights import load_model

    session = MattingSession(load_model("mobilenetv3"))
    session.run(np.zeros((SIZE, SIZE, 3), np.float32))
    return session.state_nbytes()


def clip_status(client, clip_id):
    return next(clip for clip in client.status()["clips"] if clip["clip"] == clip_id)


def test_an_idle_clip_loses_its_state_first_and_the_clip_being_rendered_goes_on_in_sequence(tmp_path):
    root = str(tmp_path)
    pattern = write_shot(os.path.join(root, "plates"), count=8)
    reference = reference_render(pattern, list(range(FIRST, FIRST + 8)), os.path.join(root, "reference"))["alpha"]
    budget = int(1.5 * state_bytes())  # room for one state and a half: two clips cannot both keep theirs
    server = start_bridge(root, "--memory-budget", str(budget), "--head-live", "0")
    try:
        with BridgeClient(server.address, timeout=60) as client:
            idle = client.open_clip("idle", source=pattern, first_frame=FIRST,
                                    outputs={"alpha": os.path.join(root, "idle", "alpha.####.exr")})
            list(idle.frames(range(FIRST, FIRST + 3), window=1))
            busy = client.open_clip("busy", source=pattern, first_frame=FIRST,
                                    outputs={"alpha": os.path.join(root, "busy", "alpha.####.exr")})
            made = list(busy.frames(range(FIRST, FIRST + 6), window=1))
            assert [(r.how, r.exact) for r in made] == [("sequence", True)] * 6
            dropped = clip_status(client, "idle")
            assert dropped["heads"] == [] and dropped["states_dropped"] == 1
            assert clip_status(client, "busy")["states_dropped"] == 0
            status = client.status()
            assert status["dropped"]["states"] == 1 and any("idle clip idle" in line
                                                            for line in status["dropped"]["recent"])
            warm = idle.frame(FIRST + 3)
            assert (warm.how, warm.preroll_frames, warm.exact) == ("preroll", 3, True)
            assert same_plate(os.path.join(root, "idle", "alpha.####.exr"), reference, FIRST + 3)
    finally:
        assert server.stop() == 0, server.log_tail()


def inline(frame_rgb):
    data = np.ascontiguousarray(to_linear(frame_rgb), np.float32)
    return InlineFrame(data.tobytes(), SIZE, SIZE, 3, "float32")


def test_a_long_inline_render_never_goes_cold_when_its_cached_outputs_fill_the_budget(tmp_path):
    # The 1080p story scaled down: at 1080p half, the default 4 GiB budget holds about 250 frames
    # of inline outputs. Here it holds the state and fewer queued frames than the client keeps in
    # flight: even with every cached output dropped it is over budget at times, and the state
    # being advanced must still stay.
    count = 40
    frames = shot_frames(count)
    plate = SIZE * SIZE * 3 * 4
    outputs = SIZE * SIZE * 4 * 2  # alpha and foreground, float16
    budget = state_bytes() + 2 * plate + 2 * outputs
    server = start_bridge(str(tmp_path), "--memory-budget", str(budget))
    try:
        with BridgeClient(server.address, timeout=60) as client:
            clip = client.open_clip("stream", first_frame=FIRST, inline_outputs=True)
            peer = RawPeer(server.address)
            early = inline(frames[0])
            message = encode(request_header("frame", "early", clip="stream", frame=FIRST,
                                            source={"inline": early.spec()}), [early.data])
            peer.send(message)
            first = peer.reply(60)
            assert first[0]["ok"] and len(first[1]) == 2
            results = list(clip.frames([(FIRST + i, None, inline(rgb)) for i, rgb in enumerate(frames)][1:],
                                       window=3))
            assert [(r.how, r.exact) for r in results] == [("sequence", True)] * (count - 1)
            status = client.status()
            assert status["dropped"]["inline_outputs"] > 0 and status["dropped"]["states"] == 0
            # A retry of a reply whose pixels were dropped is made again, not answered empty.
            peer.send(message)
            again = peer.reply(60)
            peer.close()
            assert again[0]["ok"] and [len(buffer) for buffer in again[1]] == [len(b) for b in first[1]]
            assert bytes(again[1][0]) == bytes(first[1][0])
    finally:
        assert server.stop() == 0, server.log_tail()


def test_a_half_plate_queued_on_the_gpu_road_counts_the_float32_copy_it_holds(tmp_path):
    # On the torch colour road a half plate stays half and its float32 copy goes to the device for
    # the foreground's way back: a queued frame holds both, and the budget and status must count
    # both (a float32 plate's copy on the CPU is the plate itself, counted once).
    from bridge_server.engine_adapter import Engine
    from rvm_engine.clip import ClipSettings, prepare_plate
    from rvm_engine.plates import read_plate

    pattern = write_shot(str(tmp_path), count=1)
    path = pattern.replace("####", str(FIRST))
    height, width = SIZE, SIZE
    for half, held in ((True, height * width * 3 * (2 + 4 + 4)), (False, height * width * 3 * (4 + 4))):
        prepared = prepare_plate(ClipSettings(colour_on="torch"), read_plate(path, half=half))
        assert prepared.plate.pixels.dtype == (np.float16 if half else np.float32)
        assert Engine.plate_nbytes(prepared) == held
