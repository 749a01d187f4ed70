"""A matting session holds one clip's state: frame position, automatic ratio, reset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rvm_engine.errors import FrameInputError
from rvm_engine.session import MattingSession


def test_a_session_gives_what_the_bare_model_gives_frame_after_frame(rvm_model, portrait_clip):
    session = MattingSession(rvm_model, downsample_ratio=0.5)
    rec: list = [None] * 4
    for n, frame in enumerate(portrait_clip[:4], start=1001):
        fgr, pha = session.run(frame, frame=n)
        with torch.no_grad():
            rfgr, rpha, *rec = rvm_model(torch.from_numpy(frame).permute(2, 0, 1).contiguous()[None], *rec, 0.5)
        np.testing.assert_array_equal(pha, rpha[0, 0].numpy())
        np.testing.assert_array_equal(fgr, rfgr[0].permute(1, 2, 0).numpy())
        assert session.frame == n
    assert session.frames_run == 4 and session.state_nbytes() > 0


def test_automatic_ratio_follows_the_official_table_for_portraits(rvm_model):
    session = MattingSession(rvm_model)
    assert session.downsample_ratio is None
    session.run(np.zeros((540, 960, 3), np.float32))
    assert session.downsample_ratio == pytest.approx(0.5)  # 480 px on the long side, as 1080p's 0.25


def test_reset_starts_the_clip_cold_again(rvm_model, portrait_clip):
    session = MattingSession(rvm_model, downsample_ratio=0.5)
    _, first = session.run(portrait_clip[0], frame=1)
    session.run(portrait_clip[1], frame=2)
    session.reset()
    assert session.is_cold and session.frame is None and session.state_nbytes() == 0
    _, again = session.run(portrait_clip[0], frame=1)
    np.testing.assert_array_equal(first, again)


def test_a_plate_of_another_size_mid_clip_is_refused(rvm_model, portrait_clip):
    session = MattingSession(rvm_model, downsample_ratio=0.5)
    session.run(portrait_clip[0])
    with pytest.raises(FrameInputError, match="reset the session"):
        session.run(portrait_clip[0][:128])


def test_a_batch_advances_the_state_like_single_frames(rvm_model, portrait_clip):
    one = MattingSession(rvm_model, downsample_ratio=0.5)
    many = MattingSession(rvm_model, downsample_ratio=0.5)
    fgr_b, pha_b = many.run_batch(portrait_clip[:3], last_frame=3)
    for t in range(3):
        fgr, pha = one.run(portrait_clip[t], frame=t + 1)
        np.testing.assert_allclose(pha, pha_b[t], atol=1e-5)
    assert many.frame == one.frame == 3 and many.frames_run == 3


def test_half_precision_on_the_cpu_is_a_clear_error(rvm_model):
    with pytest.raises(FrameInputError, match="CUDA"):
        MattingSession(rvm_model, precision="float16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_half_precision_on_cuda_stays_close_to_float32(portrait_clip):
    from rvm_engine.weights import load_model

    model = load_model(device="cuda")
    full = MattingSession(model, downsample_ratio=0.5)
    half = MattingSession(model, precision="float16", downsample_ratio=0.5)
    for frame in portrait_clip:
        _, a = full.run(frame)
        _, b = half.run(frame)
    assert np.abs(a - b).max() < 0.02
