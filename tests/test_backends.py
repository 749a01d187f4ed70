"""CPU backends: ONNX Runtime and OpenVINO run our network with our weights and give the plain
torch model's mattes (within 1e-4), frame after frame, at every ratio; bfloat16 stays close."""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from bridge_server.cli import main
from rvm_engine import backends
from rvm_engine.backends import BackendError, resolve_backend
from rvm_engine.clip import ClipSettings
from rvm_engine.export import export_path, state_shapes
from rvm_engine.render import render_sequence
from rvm_engine.sample import write_sample_plates
from rvm_engine.session import MattingSession

CPU_BACKENDS = [pytest.param(name, marks=pytest.mark.skipif(not backends.is_installed(name),
                                                            reason=f"{name} is not installed"))
                for name in ("onnxruntime", "openvino")]
BOUND = 1e-4


@pytest.fixture(scope="module")
def shot() -> np.ndarray:
    """Seven frames of the astronaut pan (a person, moving), 320x384."""
    from rvm_engine.sample import sample_frames

    return sample_frames(count=7, width=320, height=384, step=8)


def _mattes(model, shot, ratio, **kwargs):
    session = MattingSession(model, downsample_ratio=ratio, **kwargs)
    return [session.run(frame) for frame in shot], session


_torch_mattes: dict = {}


def _torch_reference(model, shot, ratio):
    """The plain torch model's mattes and session, once per ratio for the module."""
    if ratio not in _torch_mattes:
        _torch_mattes[ratio] = _mattes(model, shot, ratio, backend="torch")
    return _torch_mattes[ratio]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("ratio", [0.25, 0.5, 1.0])
def test_a_cpu_backend_mattes_seven_frames_as_the_torch_model_does(rvm_model, shot, backend, ratio):
    reference, torch_session = _torch_reference(rvm_model, shot, ratio)
    mattes, session = _mattes(rvm_model, shot, ratio, backend=backend)
    assert session.backend == backend
    for (fgr, pha), (fgr_ref, pha_ref) in zip(mattes, reference):
        assert np.abs(pha - pha_ref).max() <= BOUND
        assert np.abs(fgr - fgr_ref).max() <= BOUND
    # The state carried to the next frame is the torch model's too.
    for state, state_ref in zip(session._rec, torch_session._rec):
        assert state.shape == tuple(state_ref.shape)
        assert np.abs(state - state_ref.numpy()).max() <= BOUND
    assert session.state_nbytes() == torch_session.state_nbytes()


def test_the_state_shapes_are_the_ones_the_network_makes(rvm_model):
    src = torch.rand(1, 3, 270, 481)
    for ratio in (0.25, 0.4, 1.0):
        with torch.inference_mode():
            *_, r1, r2, r3, r4 = rvm_model(src, downsample_ratio=ratio)
        assert state_shapes(rvm_model, 270, 481, ratio) == [tuple(r.shape) for r in (r1, r2, r3, r4)]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_cloned_clip_and_a_batch_advance_as_single_frames_do(rvm_model, shot, backend):
    session = MattingSession(rvm_model, downsample_ratio=0.25, backend=backend)
    for frame in shot[:3]:
        session.run(frame)
    twin = session.clone()
    fgr, pha = session.run_batch(shot[3:])
    twin_mattes = [twin.run(frame) for frame in shot[3:]]
    assert np.abs(pha - np.stack([p for _, p in twin_mattes])).max() == 0
    assert np.abs(fgr - np.stack([f for f, _ in twin_mattes])).max() == 0


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_bad_frame_is_refused_as_the_torch_model_refuses_it(rvm_model, shot, backend):
    session = MattingSession(rvm_model, downsample_ratio=0.25, backend=backend)
    bad = shot[0].copy()
    bad[5, 5, 1] = np.nan
    with pytest.raises(backends.FrameInputError, match="NaN"):
        session.run(bad)


def test_the_export_is_cached_beside_the_weights_and_leaves_the_model_in_eval(rvm_model, shot):
    MattingSession(rvm_model, downsample_ratio=0.25, backend="onnxruntime" if backends.is_installed("onnxruntime")
                   else "openvino").run(shot[0])
    path = export_path(rvm_model, 384, 320, 0.25)
    assert path.is_file() and not list(path.parent.glob(path.name + ".*.tmp"))
    assert not rvm_model.training and not any(m.training for m in rvm_model.modules())


@pytest.mark.skipif(not backends.is_installed("onnxruntime"), reason="onnxruntime is not installed")
def test_render_with_backend_onnxruntime_writes_the_torch_render_plates(rvm_model, tmp_path):
    pattern = write_sample_plates(tmp_path / "src", count=6, width=256, height=224)
    settings = ClipSettings(alpha=str(tmp_path / "torch" / "a.####.exr"), downsample_ratio=0.5, backend="torch",
                            pixel_type="float")
    render_sequence(pattern, None, settings, model=rvm_model, progress=False)
    assert main(["render", pattern, "--alpha", str(tmp_path / "ort" / "a.####.exr"), "--downsample-ratio", "0.5",
                 "--backend", "onnxruntime", "--pixel-type", "float", "--no-progress"]) == 0
    for i in range(6):
        alpha, reference = (np.asarray(oiio.ImageBuf(str(tmp_path / name / f"a.{1001 + i:04d}.exr")).get_pixels(oiio.FLOAT))
                            for name in ("ort", "torch"))
        assert np.abs(alpha - reference).max() <= BOUND


def test_auto_picks_the_first_installed_backend_and_torch_on_cuda(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for precision in ("float32", "bfloat16"):
        expected = next(name for name in backends.AUTO_PREFERENCE[precision] if backends.is_installed(name))
        assert resolve_backend("auto", cpu, precision) == expected
    assert resolve_backend("auto", cuda, "float32") == "torch"
    monkeypatch.setattr(backends, "is_installed", lambda name: name == "torch")
    assert resolve_backend("auto", cpu, "float32") == "torch"


def test_a_backend_that_is_not_installed_names_the_package_to_install(monkeypatch, rvm_model):
    monkeypatch.setattr(backends, "is_installed", lambda name: name == "torch")
    with pytest.raises(BackendError, match="pip install openvino"):
        MattingSession(rvm_model, backend="openvino")
    with pytest.raises(BackendError, match="not one of"):
        MattingSession(rvm_model, backend="tensorrt")
    with pytest.raises(BackendError, match="CPU"):
        resolve_backend("onnxruntime", torch.device("cuda"), "float32")


@pytest.mark.skipif(not backends.cpu_has_bf16(), reason="this CPU has no bfloat16 instructions")
@pytest.mark.parametrize("backend", ["torch", *CPU_BACKENDS[1:]])
def test_bfloat16_mattes_stay_close_to_float32(rvm_model, shot, backend):
    # Bounded on the mean: bf16 keeps 8 bits of mantissa, and a pixel on an edge can swing far
    # (max 0.1-0.35, mean up to 0.0075 on this shot: docs/engine.md, "CPU backends").
    reference, _ = _torch_reference(rvm_model, shot, 0.25)
    mattes, session = _mattes(rvm_model, shot, 0.25, backend=backend, precision="bfloat16")
    assert session.precision == "bfloat16"
    for (fgr, pha), (_, pha_ref) in zip(mattes, reference):
        assert np.abs(pha - pha_ref).mean() <= 1e-2
        assert fgr.dtype == pha.dtype == np.float32
    # torch runs a cast copy: the shared model, which float32 clips use, keeps float32 weights.
    assert all(p.dtype == torch.float32 for p in rvm_model.parameters())


def test_bfloat16_without_the_instructions_runs_float32_and_says_so(monkeypatch, rvm_model):
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="no bfloat16 instructions"):
        session = MattingSession(rvm_model, backend="torch", precision="bfloat16")
    assert session.precision == "float32"


def test_onnxruntime_refuses_bfloat16(rvm_model, monkeypatch):
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: True)
    with pytest.raises(BackendError, match="bfloat16"):
        resolve_backend("onnxruntime", torch.device("cpu"), "bfloat16")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_backend_session_mattes_one_clip_not_a_batch_of_clips(rvm_model, shot, backend):
    session = MattingSession(rvm_model, downsample_ratio=0.25, backend=backend)
    two_clips = torch.from_numpy(shot[:2]).permute(0, 3, 1, 2)
    with pytest.raises(backends.FrameInputError, match="one clip"):
        session.run_tensor(two_clips)
    fgr, pha = session.run_tensor(two_clips[None])  # [1,T,3,H,W]: two frames of one clip
    assert fgr.shape == (1, 2, 3, 384, 320) and pha.shape == (1, 2, 1, 384, 320)


def test_a_server_fed_frames_of_many_sizes_keeps_only_the_latest_engines_built(monkeypatch, rvm_model):
    # Each new frame size exports and compiles a runtime; without a bound a long-lived bridge fed
    # plates of many sizes would hold one for every size it ever saw.
    built = []

    class Step:
        def __init__(self, graph, threads):
            built.append(graph)

    monkeypatch.setattr(backends, "exported_graph", lambda model, h, w, r: f"{h}x{w}")
    monkeypatch.setattr(backends, "OnnxRuntimeStep", Step)
    monkeypatch.setattr(backends, "MAX_ENGINES", 2)
    monkeypatch.setattr(backends, "_engines", type(backends._engines)())
    first = backends.frame_step(rvm_model, "onnxruntime", "float32", 32, 32, 1.0)
    backends.frame_step(rvm_model, "onnxruntime", "float32", 48, 48, 1.0)
    assert backends.frame_step(rvm_model, "onnxruntime", "float32", 32, 32, 1.0) is first  # used again: kept
    backends.frame_step(rvm_model, "onnxruntime", "float32", 64, 64, 1.0)  # 48x48 goes, least recently used
    assert list(backends._engines[rvm_model]) == [("onnxruntime", "float32", 32, 32, 1.0),
                                                  ("onnxruntime", "float32", 64, 64, 1.0)]
    backends.frame_step(rvm_model, "onnxruntime", "float32", 48, 48, 1.0)
    assert built == ["32x32", "48x48", "64x64", "48x48"]


def test_scratch_lends_one_array_per_role_and_shape_again_and_a_new_one_to_a_second_borrower():
    scratch = backends.Scratch()
    with scratch.borrow("src", (1, 3, 4, 5)) as first:
        assert first.shape == (1, 3, 4, 5) and first.dtype == np.float32
        with scratch.borrow("src", (1, 3, 4, 5)) as second:  # in use: a second borrower gets its own
            assert second is not first
        with scratch.borrow("fgr", (1, 3, 4, 5)) as other_role:
            assert other_role is not first and other_role is not second
    with scratch.borrow("src", (1, 3, 4, 5)) as again:
        assert again is second or again is first  # one of them was kept, not a fresh array
    kept = again
    with scratch.borrow("src", (1, 3, 4, 6)) as other_shape:
        assert other_shape is not kept
    for width in range(10):  # at most MAX_IDLE arrays stay idle
        with scratch.borrow("src", (1, 1, 1, width)):
            pass
    assert len(scratch._idle) == backends.Scratch.MAX_IDLE


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_backend_sessions_frames_never_share_memory_with_its_reused_buffers(rvm_model, shot, backend):
    # The foreground's planes and the clamped frame live in reused arrays; what a session returns
    # must be its own, or the next frame (or another clip of the same shape) would write over it.
    session = MattingSession(rvm_model, downsample_ratio=0.25, backend=backend)
    other = MattingSession(rvm_model, downsample_ratio=0.25, backend=backend)
    fgr, pha = session.run(shot[0])
    kept = fgr.copy(), pha.copy()
    other.run(shot[3])
    session.run(shot[1])
    assert np.array_equal(fgr, kept[0]) and np.array_equal(pha, kept[1])
    step = backends.frame_step(rvm_model, backend, "float32", 384, 320, 0.25)
    for array in step.scratch._idle.values():
        assert not np.shares_memory(array, fgr) and not np.shares_memory(array, pha)
    assert fgr.flags.c_contiguous and fgr.shape == (384, 320, 3) and pha.shape == (384, 320)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_clip_with_the_fast_guided_filter_refiner_mattes_on_a_cpu_backend_as_torch_does(shot, backend,
                                                                                          monkeypatch, tmp_path):
    # The fast refiner's box filter sized its kernel from the traced shape: with the export's free
    # batch axis the exporter refused the graph, so such a clip failed on the CPU runtimes (and on
    # a server's default backend, auto, which picks ONNX Runtime).
    from rvm_engine.weights import load_model

    fast = load_model("mobilenetv3", refiner="fast_guided_filter")
    monkeypatch.setenv("RVM_BRIDGE_CACHE", str(tmp_path))  # exported here and now, not found cached
    frames = shot[:3, :96, :80]
    reference, _ = _mattes(fast, frames, 0.5, backend="torch")
    mattes, session = _mattes(fast, frames, 0.5, backend=backend)
    assert session.backend == backend
    # The fast filter divides by the window's variance plus 1e-5: in flat windows it magnifies
    # float rounding (runtimes against torch: up to 5e-4 on the full 384x320 shot; the deep
    # refiner, 6e-6).
    for (fgr, pha), (fgr_ref, pha_ref) in zip(mattes, reference):
        assert np.abs(pha - pha_ref).max() <= 1e-3
        assert np.abs(fgr - fgr_ref).max() <= 1e-3


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_flipped_plate_mattes_on_a_cpu_backend_as_its_copy_does(rvm_model, shot, backend):
    # A plate read bottom up and flipped (``frame[::-1]``) is a view with a negative stride: torch
    # cannot wrap it, and the runtimes' frame check failed with a ValueError torch raised.
    flipped = shot[0, ::-1]
    session = MattingSession(rvm_model, downsample_ratio=0.25, backend=backend)
    fgr, pha = session.run(flipped)
    fgr_copy, pha_copy = MattingSession(rvm_model, downsample_ratio=0.25, backend=backend).run(flipped.copy())
    assert np.array_equal(fgr, fgr_copy) and np.array_equal(pha, pha_copy)
    assert np.array_equal(flipped, shot[0, ::-1])  # the caller's plate untouched


@pytest.mark.skipif(not backends.cpu_has_bf16(), reason="this CPU has no bfloat16 instructions")
def test_a_bfloat16_clip_with_the_fast_guided_filter_refiner_has_no_garbage_pixels(shot):
    # The fast filter's coefficients divide by a variance plus 1e-5: made in bfloat16 they were
    # noise, and fgr and pha were off by up to 1.0 (mean 0.035) against float32 on this shot.
    from rvm_engine.weights import load_model

    fast = load_model("mobilenetv3", refiner="fast_guided_filter")
    frames = shot[:3]
    reference, _ = _mattes(fast, frames, 0.25, backend="torch")
    mattes, session = _mattes(fast, frames, 0.25, backend="torch", precision="bfloat16")
    assert session.precision == "bfloat16"
    for (fgr, pha), (fgr_ref, pha_ref) in zip(mattes, reference):
        assert np.abs(pha - pha_ref).mean() <= 1e-2  # as the deep refiner's bfloat16 mattes are bounded
        assert np.abs(pha - pha_ref).max() <= 0.5 and np.abs(fgr - fgr_ref).max() <= 0.5


def test_bfloat16_with_the_fast_guided_filter_runs_in_torch_and_openvino_is_refused_with_what_to_do():
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu, "bfloat16", "fast_guided_filter") == "torch"
    assert resolve_backend("auto", cpu, "float32", "fast_guided_filter") == resolve_backend("auto", cpu, "float32")
    if backends.is_installed("openvino"):
        assert resolve_backend("auto", cpu, "bfloat16") == "openvino"
        with pytest.raises(BackendError, match="--backend torch"):
            resolve_backend("openvino", cpu, "bfloat16", "fast_guided_filter")
        assert resolve_backend("openvino", cpu, "float32", "fast_guided_filter") == "openvino"


def test_scratch_keeps_the_latest_shapes_when_full():
    scratch = backends.Scratch()
    arrays = {}
    for width in range(backends.Scratch.MAX_IDLE + 2):
        with scratch.borrow("src", (1, 1, 2, width + 1)) as array:
            arrays[width] = array
    with scratch.borrow("src", (1, 1, 2, backends.Scratch.MAX_IDLE + 2)) as newest:
        assert newest is arrays[backends.Scratch.MAX_IDLE + 1]  # a shape seen late is reused too
    with scratch.borrow("src", (1, 1, 2, 1)) as oldest:
        assert oldest is not arrays[0]  # the longest unused went


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_series_of_frames_keeps_one_frame_of_scratch_not_the_series(rvm_model, shot, backend):
    session = MattingSession(rvm_model, downsample_ratio=0.25, backend=backend)
    session.run_batch(np.stack(shot[:4]))
    step = backends.frame_step(rvm_model, backend, "float32", 384, 320, 0.25)
    assert all(shape[0] == 1 for _, shape in step.scratch._idle)
