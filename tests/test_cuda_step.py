"""The captured network step: fixed buffers, clips sharing one step, a bad graph dropped.

The CUDA graph itself needs a GPU (those tests skip without one). What the graph relies on runs
on the CPU too: the frame and states copied into fixed buffers, zero states for a cold clip,
outputs copied out before the next clip's frame, and the check of a graph's first replay.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from rvm_engine import cuda_step
from rvm_engine.session import MattingSession

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def _frames(clip: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(f.transpose(2, 0, 1)))[None] for f in clip]


def test_fixed_buffers_give_the_plain_networks_mattes_from_a_cold_start(rvm_model, portrait_clip):
    step = cuda_step.StaticStep(rvm_model, 256, 224, 0.5, torch.float32, torch.device("cpu"), capture=False)
    rec: list = [None] * 4
    plain: list = [None] * 4
    with torch.inference_mode():
        for src in _frames(portrait_clip):
            fgr, pha, rec = step.run(src, rec)
            want_fgr, want_pha, *plain = rvm_model(src, *plain, downsample_ratio=0.5)
            assert torch.equal(pha, want_pha) and torch.equal(fgr, want_fgr)
    assert all(torch.equal(a, b) for a, b in zip(rec, plain))


def test_two_clips_interleaved_on_one_shared_step_each_keep_their_own_state(rvm_model, portrait_clip, monkeypatch):
    monkeypatch.setattr(cuda_step, "graphs_enabled", lambda device: True)
    other_clip = portrait_clip[::-1].copy()
    solo_a, solo_b = MattingSession(rvm_model, downsample_ratio=0.5), MattingSession(rvm_model, downsample_ratio=0.5)
    monkeypatch.setattr(cuda_step, "graphs_enabled", lambda device: False)
    want_a = [solo_a.run(f)[1] for f in portrait_clip]
    want_b = [solo_b.run(f)[1] for f in other_clip]
    monkeypatch.setattr(cuda_step, "graphs_enabled", lambda device: True)
    a, b = MattingSession(rvm_model, downsample_ratio=0.5), MattingSession(rvm_model, downsample_ratio=0.5)
    for t in range(len(portrait_clip)):
        np.testing.assert_array_equal(a.run(portrait_clip[t], frame=t)[1], want_a[t])
        np.testing.assert_array_equal(b.run(other_clip[t], frame=t)[1], want_b[t])
    assert a.frames_run == b.frames_run == len(portrait_clip) and a.frame == len(portrait_clip) - 1
    # Both sessions went through the same shared step (one per size, ratio and precision).
    assert cuda_step.step_for(rvm_model, 256, 224, 0.5, torch.float32, torch.device("cpu")) is \
        cuda_step.step_for(rvm_model, 256, 224, 0.5, torch.float32, torch.device("cpu"))


def test_a_graph_whose_first_replay_disagrees_is_dropped_and_the_eager_matte_is_kept(rvm_model, portrait_clip, caplog):
    step = cuda_step.StaticStep(rvm_model, 256, 224, 0.5, torch.float32, torch.device("cpu"), capture=False)

    class WrongGraph:  # replays into outputs that do not match the network
        def replay(self) -> None:
            step._outputs = [torch.zeros_like(t) for t in step._forward()]

    step.graph, step.checked = WrongGraph(), False
    src = _frames(portrait_clip)[0]
    with caplog.at_level(logging.WARNING, logger="rvm_engine.cuda_step"):
        _, pha, _ = step.run(src, [None] * 4)
    with torch.inference_mode():
        want = rvm_model(src, downsample_ratio=0.5)[1]
    assert torch.equal(pha, want)
    assert step.graph is None and "running that size eagerly" in caplog.text


def test_steps_are_bounded_per_model(rvm_model):
    cpu = torch.device("cpu")
    first = cuda_step.step_for(rvm_model, 64, 64, 1.0, torch.float32, cpu)
    for size in range(72, 72 + 8 * cuda_step.MAX_GRAPHS, 8):
        cuda_step.step_for(rvm_model, size, size, 1.0, torch.float32, cpu)
    assert len(cuda_step._by_model[rvm_model].steps) == cuda_step.MAX_GRAPHS
    assert cuda_step.step_for(rvm_model, 64, 64, 1.0, torch.float32, cpu) is not first


@CUDA
@pytest.mark.parametrize("precision, bound", [("float32", 1e-4), ("float16", 5e-3)])
def test_captured_graphs_on_cuda_match_the_eager_float32_session(portrait_clip, monkeypatch, precision, bound):
    from rvm_engine.weights import load_model

    model = load_model(device="cuda")
    monkeypatch.setenv(cuda_step.ENV_SWITCH, "0")
    eager = MattingSession(model, downsample_ratio=0.5)
    want = [eager.run(f)[1] for f in portrait_clip]
    monkeypatch.setenv(cuda_step.ENV_SWITCH, "1")
    graphed = MattingSession(model, downsample_ratio=0.5, precision=precision)
    got = [graphed.run(f)[1] for f in portrait_clip]
    worst = max(float(np.abs(a - b).max()) for a, b in zip(got, want))
    assert worst <= bound, f"{precision} graph alpha differs from eager float32 by {worst}"
    step = cuda_step.step_for(model, *portrait_clip.shape[1:3], 0.5, graphed.dtype, torch.device("cuda"))
    assert step.graph is not None, "the graph was dropped by its own check"


@CUDA
@pytest.mark.parametrize("precision, bound", [("float32", 1e-4), ("float16", 5e-3)])
def test_a_cold_clip_batched_with_warm_ones_on_cuda_makes_its_solo_mattes(portrait_clip, precision, bound):
    from rvm_engine.session import run_sessions
    from rvm_engine.weights import load_model

    model = load_model(device="cuda")
    clips = [portrait_clip, portrait_clip[::-1].copy()]
    solo = [MattingSession(model, downsample_ratio=0.5, precision=precision) for _ in clips]
    want = [[solo[c].run(f)[1] for f in clip] for c, clip in enumerate(clips)]
    together = [MattingSession(model, downsample_ratio=0.5, precision=precision) for _ in clips]
    together[0].run(clips[0][0])  # the first clip is warm when the second joins cold
    for t in range(1, len(portrait_clip)):
        frames = [clips[0][t], clips[1][t - 1]]
        mattes = run_sessions(together, frames, [t, t - 1])
        assert all(m.batch == 2 for m in mattes)
        assert np.abs(mattes[0].pha - want[0][t]).max() <= bound
        assert np.abs(mattes[1].pha - want[1][t - 1]).max() <= bound
