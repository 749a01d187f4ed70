"""Several clips' next frames run as one batch (the bridge's many clips on one GPU): each clip's
matte is the one it makes alone, its recurrent state stays its own, and a bad frame fails only
its own clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvm_engine import backends
from rvm_engine.clip import ClipMatter, ClipSettings, matte_clips
from rvm_engine.errors import FrameInputError
from rvm_engine.sample import sample_frames
from rvm_engine.session import MattingSession, run_sessions

# Torch's first convolution takes another CPU kernel for a batch: float rounding, measured up to
# about 8e-6 (docs/server.md, "Many clips on one GPU").
TORCH_BOUND = 2e-5
# A shape of its own: ONNX Runtime's step is built once per shape, with the thread count of the time.
HEIGHT, WIDTH, RATIO = 160, 144, 0.5
ORT = pytest.mark.skipif(not backends.is_installed("onnxruntime"), reason="onnxruntime is not installed")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def footage() -> list:
    """Four clips of different footage: the portrait panned at four speeds, the last one mirrored."""
    clips = [sample_frames(count=4, width=WIDTH, height=HEIGHT, step=step) for step in (3, 9, 17, 6)]
    clips[3] = np.ascontiguousarray(clips[3][:, :, ::-1])
    return clips


def solo(model, clip, backend):
    session = MattingSession(model, downsample_ratio=RATIO, backend=backend)
    return [session.run(frame, 1001 + n) for n, frame in enumerate(clip)]


def together(model, footage, backend):
    sessions = [MattingSession(model, downsample_ratio=RATIO, backend=backend) for _ in footage]
    mattes = [[] for _ in footage]
    for n in range(len(footage[0])):
        for clip, matte in enumerate(run_sessions(sessions, [frames[n] for frames in footage], [1001 + n] * 4)):
            mattes[clip].append(matte)
    return mattes, sessions


@pytest.mark.parametrize("backend", ["torch", pytest.param("onnxruntime", marks=ORT)])
def test_four_clips_of_different_footage_batched_each_make_their_solo_mattes(rvm_model, footage, backend):
    mattes, sessions = together(rvm_model, footage, backend)
    worst = 0.0
    for clip, frames in enumerate(footage):
        for matte, (fgr_solo, pha_solo) in zip(mattes[clip], solo(rvm_model, frames, backend)):
            assert matte.batch == 4
            worst = max(worst, float(np.abs(matte.pha - pha_solo).max()), float(np.abs(matte.fgr - fgr_solo).max()))
    # A state leaking between clips would make another clip's matte: differences near 1, not rounding.
    assert worst <= (TORCH_BOUND if backend == "torch" else 0.0)
    assert all(session.frame == 1004 and session.frames_run == 4 for session in sessions)
    # Each clip holds its own copy of its state, not a view of the batch's.
    assert all(session.state_nbytes() == sessions[0].state_nbytes() for session in sessions)
    assert sessions[0]._rec[0].shape[0] == 1


@pytest.mark.parametrize("backend", ["torch", pytest.param("onnxruntime", marks=ORT)])
def test_a_cold_clip_joins_a_batch_of_warm_ones(rvm_model, footage, backend):
    warm = MattingSession(rvm_model, downsample_ratio=RATIO, backend=backend)
    warm.run(footage[0][0], 1001)
    reference = warm.clone()
    cold = MattingSession(rvm_model, downsample_ratio=RATIO, backend=backend)
    made_warm, made_cold = run_sessions([warm, cold], [footage[0][1], footage[1][0]], [1002, 1001])
    bound = TORCH_BOUND if backend == "torch" else 0.0
    assert made_warm.batch == made_cold.batch == 2
    assert np.abs(made_warm.pha - reference.run(footage[0][1], 1002)[1]).max() <= bound
    assert np.abs(made_cold.pha - solo(rvm_model, footage[1][:1], backend)[0][1]).max() <= bound


def test_a_frame_of_another_size_in_a_batch_fails_only_its_own_clip(rvm_model, footage):
    sessions = [MattingSession(rvm_model, downsample_ratio=RATIO) for _ in range(3)]
    run_sessions(sessions, [clip[0] for clip in footage[:3]], [1001] * 3)
    wrong = np.zeros((HEIGHT + 16, WIDTH, 3), np.float32)
    results = run_sessions(sessions, [footage[0][1], wrong, footage[2][1]], [1002] * 3)
    assert isinstance(results[1], FrameInputError) and "reset the session" in str(results[1])
    for clip in (0, 2):
        assert results[clip].batch == 2
        assert np.abs(results[clip].pha - solo(rvm_model, footage[clip][:2], "torch")[1][1]).max() <= TORCH_BOUND
    assert [s.frame for s in sessions] == [1002, 1001, 1002]


def test_a_frame_the_network_refuses_fails_only_its_own_clip_and_the_batch_still_runs(rvm_model, footage):
    sessions = [MattingSession(rvm_model, downsample_ratio=RATIO) for _ in range(3)]
    bad = footage[1][0].copy()
    bad[4, 4, 0] = np.nan
    results = run_sessions(sessions, [footage[0][0], bad, footage[2][0]], [1001] * 3)
    assert isinstance(results[1], FrameInputError) and "NaN" in str(results[1])
    assert sessions[1].is_cold  # its state did not move
    assert results[2].batch == 1  # the batch failed on the NaN, so each ran alone
    assert np.abs(results[2].pha - solo(rvm_model, footage[2][:1], "torch")[0][1]).max() <= TORCH_BOUND


@pytest.mark.skipif(not backends.is_installed("openvino"), reason="openvino is not installed")
def test_openvino_clips_run_one_at_a_time(rvm_model, footage):
    sessions = [MattingSession(rvm_model, downsample_ratio=RATIO, backend="openvino") for _ in range(2)]
    assert sessions[0].batch_key(HEIGHT, WIDTH) is None
    results = run_sessions(sessions, [footage[0][0], footage[1][0]], [1001, 1001])
    assert [result.batch for result in results] == [1, 1]


def test_clip_matters_batched_make_the_results_matte_makes(rvm_model, footage, tmp_path):
    from rvm_engine.plates import Plate

    settings = [ClipSettings(alpha=str(tmp_path / f"c{n}" / "a.####.exr"), foreground=str(tmp_path / f"c{n}" / "f.####.exr"),
                             downsample_ratio=RATIO, backend="torch", colour_space="sRGB - Texture")
                for n in range(2)]
    plates = [Plate(clip[0], ["R", "G", "B"], (0, 0, WIDTH, HEIGHT)) for clip in footage[:2]]
    matters = [ClipMatter(s, rvm_model) for s in settings]
    alone = [ClipMatter(s, rvm_model).matte(p, 1001) for s, p in zip(settings, plates)]
    results = matte_clips(matters, plates, [1001, 1001], [None, None])
    for result, reference in zip(results, alone):
        assert result.frame == 1001 and result.batch == 2 and result.foreground is not None
        assert np.abs(result.alpha - reference.alpha).max() <= TORCH_BOUND
        assert np.abs(result.foreground - reference.foreground).max() <= 1e-4


def test_clips_whose_colour_runs_in_torch_batch_and_make_the_results_matte_makes(rvm_model, footage, tmp_path):
    """Plates prepared through torch colour (the CUDA road, forced here on the CPU) are tensors
    on the device: they batch as they are and their foregrounds go back through torch."""
    from rvm_engine.plates import Plate

    settings = [ClipSettings(alpha=str(tmp_path / f"c{n}" / "a.####.exr"), foreground=str(tmp_path / f"c{n}" / "f.####.exr"),
                             downsample_ratio=RATIO, backend="torch", colour_space="Linear Rec.709 (sRGB)",
                             colour_on="torch") for n in range(2)]
    # Scene-linear plates with highlights above 1.0.
    plates = [Plate(np.ascontiguousarray(clip[0] ** 2.2 * 4.0), ["R", "G", "B"], (0, 0, WIDTH, HEIGHT))
              for clip in footage[:2]]
    matters = [ClipMatter(s, rvm_model) for s in settings]
    assert all(isinstance(matter.prepare(plate).model_rgb, torch.Tensor) for matter, plate in zip(matters, plates))
    alone = [ClipMatter(s, rvm_model).matte(p, 1001) for s, p in zip(settings, plates)]
    results = matte_clips(matters, plates, [1001, 1001], [None, None])
    for result, reference in zip(results, alone):
        assert not isinstance(result, Exception), result
        assert result.batch == 2 and isinstance(result.alpha, np.ndarray)
        assert np.abs(result.alpha - reference.alpha).max() <= TORCH_BOUND
        assert np.abs(result.foreground - reference.foreground).max() <= 1e-4
