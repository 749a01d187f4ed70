"""Many clips on one bridge, their frames run as one batch, told as a facility lives it: four
artists render four shots at once and each gets the plates a render of their shot alone makes;
two inline streams of different footage batched never share a state; one artist's bad frame
fails only their request; ``--batch-max 1`` runs every frame alone."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from bridge_server.client import BridgeClient, InlineFrame
from bridge_server.client.errors import BridgeError
from bridge_server.commands.status import format_status
from bridge_server.server_config import BATCH_MAX, ServerConfig

from .test_server_support import (
    FIRST,
    SIZE,
    THREADS,
    frame_path,
    pixels,
    reference_render,
    shot_frames,
    start_bridge,
    to_linear,
    write_shot,
)

FRAMES = list(range(FIRST, FIRST + 8))
CLIPS = 4
TORCH_BOUND = 2e-5  # a batch's float rounding on torch's CPU kernels (docs/server.md)


def write_footage(folder: str, index: int) -> str:
    """Shot ``index``: the portrait pan starting ``6 * index`` frames in, mirrored when odd, so
    every shot's pixels (and so its recurrent state) differ."""
    from rvm_engine.plate_writing import write_plate

    os.makedirs(folder, exist_ok=True)
    frames = shot_frames(len(FRAMES) + 6 * index)[6 * index:]
    for frame, rgb in zip(FRAMES, frames):
        rgb = rgb[:, ::-1] if index % 2 else rgb
        write_plate(os.path.join(folder, f"shot{index}.{frame:04d}.exr"), to_linear(np.ascontiguousarray(rgb)),
                    ["R", "G", "B"], pixel_type="half")
    return os.path.join(folder, f"shot{index}.####.exr")


def torch_reference(pattern: str, folder: str, colour_on: str = "auto") -> str:
    """The in-process torch render of a shot, float plates, on the bridges' thread count."""
    import torch

    from rvm_engine.clip import ClipSettings
    from rvm_engine.render import render_sequence

    alpha = os.path.join(folder, "alpha.####.exr")
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        render_sequence(pattern, FRAMES, ClipSettings(alpha=alpha, backend="torch", pixel_type="float",
                                                      colour_on=colour_on), progress=False, seq_chunk=1)
    finally:
        torch.set_num_threads(threads)
    return alpha


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("batch"))
    patterns = [write_footage(os.path.join(root, "plates"), index) for index in range(CLIPS)]
    # The default backend (ONNX Runtime here) and torch, each shot alone, in process.
    auto = [reference_render(pattern, FRAMES, os.path.join(root, f"reference{index}"))["alpha"]
            for index, pattern in enumerate(patterns)]
    torch_alone = [torch_reference(pattern, os.path.join(root, f"torch{index}")) for index, pattern in
                   enumerate(patterns)]
    # A long pre-roll that keeps the one worker busy while other clips queue their frames.
    blocker = write_shot(os.path.join(root, "blocker"), count=40, size=256, name="blocker")
    return SimpleNamespace(root=root, patterns=patterns, auto=auto, torch=torch_alone, blocker=blocker)


def one_worker_bridge(shots, batch_max: int, log: str, *extra: str):
    server = start_bridge(shots.root, "--workers", "1", "--batch-max", str(batch_max), "--preroll-limit", "60",
                          *extra, log=os.path.join(shots.root, log))
    yield server
    assert server.stop() == 0, server.log_tail()


@pytest.fixture(scope="module")
def bridge(shots):
    yield from one_worker_bridge(shots, 4, "batch.log")


@pytest.fixture(scope="module")
def bridge_off(shots):
    yield from one_worker_bridge(shots, 1, "off.log")


@pytest.fixture(scope="module")
def bridge_gpu_road(shots):
    """Colour in torch, as a CUDA bridge runs it, here on the CPU (``--colour-on torch``)."""
    yield from one_worker_bridge(shots, 4, "gpu-road.log", "--colour-on", "torch")


def at_once(calls):
    """Run ``calls`` on threads of their own, started together; their results (or exceptions)."""
    results = [None] * len(calls)

    def run(index, call):
        try:
            results[index] = call()
        except Exception as error:  # noqa: BLE001 - the test looks at it
            results[index] = error

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return results


def render_shot(address, shots, index, name, **settings):
    """One artist's render of shot ``index`` on a client of its own; the frame results."""
    alpha = os.path.join(shots.root, name, f"shot{index}", "alpha.####.exr")
    with BridgeClient(address, timeout=120, name=f"artist{index}") as client:
        clip = client.open_clip(f"{name}-{index}", source=shots.patterns[index], first_frame=FIRST,
                                outputs={"alpha": alpha}, **settings)
        return alpha, list(clip.frames(FRAMES, window=3))


def while_held(address, shots, name, calls):
    """Run ``calls`` at once while a 39-frame pre-roll holds the bridge's one worker, so their
    first frames are all queued and read when it frees; their results."""
    def preroll():
        with BridgeClient(address, timeout=120, name="blocker") as client:
            clip = client.open_clip(f"blocker-{name}", source=shots.blocker, first_frame=FIRST,
                                    outputs={"alpha": os.path.join(shots.root, f"blocker-{name}", "alpha.####.exr")})
            return clip.frame(FIRST + 39)

    blocker = threading.Thread(target=preroll)
    blocker.start()
    with BridgeClient(address, timeout=30) as client:
        while not any(c["busy"] for c in client.status()["clips"] if c["clip"] == f"blocker-{name}"):
            time.sleep(0.02)
    results = at_once(calls)
    blocker.join(120)
    return results


def batching(address, formatted=None):
    with BridgeClient(address, timeout=30) as client:
        status = client.status()
    if formatted is not None:
        formatted.append(format_status(address, status))
    return status["batching"]


def test_four_artists_render_four_shots_at_once_in_batches_and_each_gets_the_plates_of_their_shot_alone(
        shots, bridge):
    before = batching(bridge.address)["batches"]
    done = while_held(bridge.address, shots, "auto",
                      [lambda i=i: render_shot(bridge.address, shots, i, "auto") for i in range(CLIPS)])
    for index, (alpha, results) in enumerate(done):
        assert [r.frame for r in results] == FRAMES and all(r.how == "sequence" and r.exact for r in results)
        # ONNX Runtime on one thread: a batched frame is the frame alone, bit for bit.
        for frame in FRAMES:
            assert np.array_equal(pixels(frame_path(alpha, frame)), pixels(frame_path(shots.auto[index], frame))), \
                (index, frame)
    sizes = [r.batch for _, results in done for r in results]
    report: list = []
    status = batching(bridge.address, report)
    assert sizes.count(CLIPS) >= CLIPS and status["batches"] > before, (sizes, status)  # the first frames at least
    assert status["batch_max"] == 4 and 1 < status["mean_batch"] <= 4
    assert "batching: up to 4 clips a network call" in report[0]


def test_on_torch_a_batched_shot_stays_within_float_rounding_of_the_shot_alone(shots, bridge):
    done = while_held(bridge.address, shots, "torch", [
        lambda i=i: render_shot(bridge.address, shots, i, "torch", backend="torch", pixel_type="float")
        for i in range(CLIPS)])
    assert max(r.batch for _, results in done for r in results) > 1
    for index, (alpha, _) in enumerate(done):
        for frame in FRAMES:
            made, alone = pixels(frame_path(alpha, frame)), pixels(frame_path(shots.torch[index], frame))
            assert np.abs(made - alone).max() <= TORCH_BOUND, (index, frame)


def test_scrubbing_back_to_a_frame_made_in_a_batch_serves_the_cached_plate_and_runs_no_batch(shots, bridge):
    done = while_held(bridge.address, shots, "scrub",
                      [lambda i=i: render_shot(bridge.address, shots, i, "scrub") for i in range(2)])
    assert done[0][1][0].batch == 2
    before = batching(bridge.address)
    with BridgeClient(bridge.address, timeout=60) as client:
        clip = client.open_clip("scrub-0", source=shots.patterns[0], first_frame=FIRST,
                                outputs={"alpha": done[0][0]})
        again = clip.frame(FIRST)
    # Nothing ran for it: the reply (and the log line) must not say it ran in a batch of two.
    assert (again.how, again.made_as, again.batch) == ("cache", "sequence", 1)
    assert batching(bridge.address) == before


def inline_frames(index: int, count: int = 4) -> list:
    frames = shot_frames(count + 6 * index)[6 * index:]
    return [InlineFrame(np.ascontiguousarray(f[:, ::-1] if index % 2 else f).tobytes(), SIZE, SIZE, 3, "float32")
            for f in frames]


def stream(address, clip_id, images, first=FIRST):
    with BridgeClient(address, timeout=120, name=clip_id) as client:
        clip = client.open_clip(clip_id, inline_outputs=True, inline_dtype="float32", colour_space="sRGB - Texture",
                                backend="torch", first_frame=first)
        results = list(clip.frames([(first + n, None, image) for n, image in enumerate(images)], window=2))
    return [np.frombuffer(r.images["alpha"].data, np.float32) for r in results], [r.batch for r in results]


def test_two_inline_streams_of_different_footage_batched_never_share_a_state(shots, bridge):
    footage = [inline_frames(0), inline_frames(3)]
    alone = [stream(bridge.address, f"alone{i}", images)[0] for i, images in enumerate(footage)]  # one at a time
    together = while_held(bridge.address, shots, "streams",
                          [lambda i=i: stream(bridge.address, f"together{i}", footage[i]) for i in range(2)])
    assert max(size for _, sizes in together for size in sizes) == 2
    for (mattes, _), solo in zip(together, alone):
        assert max(float(np.abs(a - b).max()) for a, b in zip(mattes, solo)) <= TORCH_BOUND
    # The two shots' mattes differ far more than rounding: a shared state would show.
    assert float(np.abs(alone[0][-1] - alone[1][-1]).max()) > 0.1


def test_a_bad_frame_in_a_batch_fails_only_its_own_request(shots, bridge):
    small = inline_frames(0, 2) + inline_frames(1, 2)
    wide = np.zeros((SIZE, SIZE + 16, 3), np.float32)
    clients = [BridgeClient(bridge.address, timeout=120, name=f"c{i}") for i in range(3)]
    clips = [c.open_clip(f"bad{i}", inline_outputs=True, colour_space="sRGB - Texture", backend="torch",
                         first_frame=FIRST) for i, c in enumerate(clients)]
    # The third clip's state is built on a wider frame; its next frame has the others' size.
    clips[0].frame(FIRST, image=small[0])
    clips[1].frame(FIRST, image=small[2])
    clips[2].frame(FIRST, image=InlineFrame(wide.tobytes(), SIZE, SIZE + 16, 3, "float32"))
    results = while_held(bridge.address, shots, "bad", [lambda: clips[0].frame(FIRST + 1, image=small[1]),
                                                        lambda: clips[1].frame(FIRST + 1, image=small[3]),
                                                        lambda: clips[2].frame(FIRST + 1, image=small[1])])
    assert isinstance(results[2], BridgeError) and results[2].code == "frame_input", results[2]
    assert "built on" in results[2].message
    assert [r.batch for r in results[:2]] == [2, 2] and all(r.how == "sequence" for r in results[:2])
    assert clips[1].frame(FIRST + 2, image=small[2]).how == "sequence"  # the others go on as ever
    for c in clients:
        c.close()


def test_batch_max_1_runs_every_frame_alone(shots, bridge_off):
    done = while_held(bridge_off.address, shots, "off",
                      [lambda i=i: render_shot(bridge_off.address, shots, i, "off") for i in range(CLIPS)])
    assert all(r.batch == 1 for _, results in done for r in results)
    assert batching(bridge_off.address) == {"batch_max": 1, "batches": 0, "batched_frames": 0, "mean_batch": 0.0}
    for index, (alpha, _) in enumerate(done):
        assert all(np.array_equal(pixels(frame_path(alpha, f)), pixels(frame_path(shots.auto[index], f)))
                   for f in FRAMES)


def test_a_bridge_on_the_gpu_road_batches_tensor_plates_and_makes_what_the_same_road_makes_in_process(
        shots, bridge_gpu_road, bridge):
    """The road a CUDA bridge takes (plates converted by torch colour, tensors from the reader to
    the writer), run here on the CPU: four shots batched, an inline stream with its foreground."""
    done = while_held(bridge_gpu_road.address, shots, "road", [
        lambda i=i: render_shot(bridge_gpu_road.address, shots, i, "road", backend="torch", pixel_type="float")
        for i in range(CLIPS)])
    assert max(r.batch for _, results in done for r in results) > 1
    to_same_road, to_ocio_road = [], []
    for index, (alpha, results) in enumerate(done):
        assert all(r.how == "sequence" and r.exact for r in results)
        same_road = torch_reference(shots.patterns[index], os.path.join(shots.root, f"road-alone{index}"), "torch")
        for frame in FRAMES:
            made = pixels(frame_path(alpha, frame))
            to_same_road.append(float(np.abs(made - pixels(frame_path(same_road, frame))).max()))
            to_ocio_road.append(float(np.abs(made - pixels(frame_path(shots.torch[index], frame))).max()))
    # Within a batch's rounding of the same road in process, and within the baked colour's 1e-4 of
    # the OCIO road; nearer the first by far (measured 6e-7 against 9e-6): the bridge took the torch road.
    assert max(to_same_road) <= TORCH_BOUND and max(to_ocio_road) <= 1e-4 + TORCH_BOUND
    assert max(to_same_road) < 0.5 * max(to_ocio_road), (max(to_same_road), max(to_ocio_road))
    images = inline_frames(2)
    road, ocio = (stream_outputs(server.address, f"road-stream-{name}", images)
                  for name, server in (("torch", bridge_gpu_road), ("ocio", bridge)))
    for (alpha_road, fgr_road), (alpha_ocio, fgr_ocio) in zip(road, ocio):
        assert np.abs(alpha_road - alpha_ocio).max() <= 1e-4
        assert np.abs(fgr_road - fgr_ocio).max() <= 1e-4


def stream_outputs(address, clip_id, images):
    """Alpha and foreground of a scene-linear inline stream, made alone."""
    with BridgeClient(address, timeout=120, name=clip_id) as client:
        clip = client.open_clip(clip_id, inline_outputs=True, inline_dtype="float32", backend="torch",
                                first_frame=FIRST)
        linear = [InlineFrame(to_linear(np.frombuffer(image.data, np.float32).reshape(SIZE, SIZE, 3)).tobytes(),
                              SIZE, SIZE, 3, "float32") for image in images]
        results = list(clip.frames([(FIRST + n, None, image) for n, image in enumerate(linear)], window=1))
    return [(np.frombuffer(r.images["alpha"].data, np.float32), np.frombuffer(r.images["foreground"].data, np.float32))
            for r in results]


def test_batching_is_on_by_default_on_cuda_and_off_on_the_cpu(tmp_path):
    assert ServerConfig(roots=[str(tmp_path)]).batch_size() == 1
    assert ServerConfig(roots=[str(tmp_path)], device="cuda").batch_size() == BATCH_MAX
    assert ServerConfig(roots=[str(tmp_path)], device="cuda:1", batch_max=1).batch_size() == 1


def test_on_a_gpu_bridge_where_colour_runs_in_torch_clips_of_one_height_and_other_widths_are_not_gathered():
    # On CUDA a prepared plate is a [3,H,W] tensor (torch colour): the batch key must read its size
    # as the OCIO plate's [H,W,3], or a 1080-high 4:3 clip would be gathered with a 16:9 one.
    import torch

    from bridge_server.engine_adapter import Engine
    from rvm_engine.clip import ClipSettings, prepare_plate
    from rvm_engine.plates import Plate

    settings = {"backend": "torch", "precision": "float32", "downsample_ratio": None, "framing": "portrait"}
    keys = {}
    for colour_on in ("torch", "ocio"):
        for width in (96, 128):
            plate = Plate(np.full((72, width, 3), 0.18, np.float32), ["R", "G", "B"], (0, 0, width, 72))
            prepared = prepare_plate(ClipSettings(colour_on=colour_on), plate)
            assert isinstance(prepared.model_rgb, torch.Tensor) == (colour_on == "torch")
            keys[colour_on, width] = Engine.batch_key(settings, "model", prepared)
    assert keys["torch", 96] != keys["torch", 128]
    assert keys["torch", 96] == keys["ocio", 96] and keys["torch", 128] == keys["ocio", 128]


def test_on_the_gpu_road_half_inline_frames_stay_half_and_make_what_the_same_float_frames_make(shots, bridge_gpu_road):
    # A host's half frames go to the device as half on the torch road (no float32 copy on the
    # CPU first); the same numbers as float32 must give the same outputs bit for bit.
    linear = [to_linear(np.frombuffer(image.data, np.float32).reshape(SIZE, SIZE, 3)).astype(np.float16)
              for image in inline_frames(1)[:3]]
    made = {}
    for dtype in ("float16", "float32"):
        with BridgeClient(bridge_gpu_road.address, timeout=120, name=f"half-{dtype}") as client:
            clip = client.open_clip(f"half-{dtype}", inline_outputs=True, inline_dtype="float32", backend="torch",
                                    first_frame=FIRST)
            frames = [InlineFrame(np.ascontiguousarray(rgb, dtype).tobytes(), SIZE, SIZE, 3, dtype) for rgb in linear]
            made[dtype] = [(r.images["alpha"].data, r.images["foreground"].data)
                           for r in clip.frames([(FIRST + n, None, f) for n, f in enumerate(frames)], window=1)]
    assert made["float16"] == made["float32"]
    from bridge_server.client.protocol import InlineImage
    from bridge_server.engine_adapter import Engine

    half = np.zeros((4, 5, 4), np.float16).tobytes()
    image = InlineImage(buffer=0, shape=(4, 5, 4), dtype="float16")
    assert Engine(colour_on="torch").inline_plate(half, image).pixels.dtype == np.float16
    assert Engine(colour_on="ocio").inline_plate(half, image).pixels.dtype == np.float32
    assert Engine().inline_plate(half, image).pixels.dtype == np.float32  # auto on the CPU: OCIO
