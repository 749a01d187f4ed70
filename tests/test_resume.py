"""Resuming a stopped render: the plates equal the uninterrupted render's, and nothing complete is rewritten."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from rvm_engine.clip import ClipSettings
from rvm_engine.plate_writing import write_plate
from rvm_engine.render import render_sequence
from rvm_engine.resume import plan_resume
from rvm_engine.sample import write_sample_plates

FIRST, COUNT = 1001, 48
LAST = FIRST + COUNT - 1


def _settings(out: Path) -> ClipSettings:
    return ClipSettings(alpha=str(out / "a.####.exr"), foreground=str(out / "fg.####.exr"))


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT))


@pytest.fixture(scope="module")
def shot(tmp_path_factory, rvm_model):
    """48 small plates and their uninterrupted render (alpha and foreground); returns (pattern, render folder)."""
    root = tmp_path_factory.mktemp("resume_shot")
    pattern = write_sample_plates(root / "plates", count=COUNT, width=64, height=64, step=4, first=FIRST)
    whole = root / "whole"
    report = render_sequence(pattern, f"{FIRST}-{LAST}", _settings(whole), model=rvm_model, progress=False)
    assert sorted(report.written) == list(range(FIRST, LAST + 1))
    return pattern, whole


def _copy(whole: Path, to: Path, frames) -> Path:
    """A render folder as a stopped render left it: the plates of ``frames`` only."""
    to.mkdir()
    for frame in frames:
        for name in ("a", "fg"):
            shutil.copy2(whole / f"{name}.{frame}.exr", to / f"{name}.{frame}.exr")
    return to


def _stamps(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}


def test_resuming_forty_frames_in_gives_plates_bit_identical_to_the_uninterrupted_render(shot, rvm_model, tmp_path):
    pattern, whole = shot
    out = _copy(whole, tmp_path / "out", range(FIRST, FIRST + 40))
    report = render_sequence(pattern, f"{FIRST}-{LAST}", _settings(out), resume=True, model=rvm_model, progress=False)
    assert sorted(report.written) == list(range(FIRST + 40, LAST + 1))
    assert report.exact and report.skipped == 40 and report.prerolled == 40
    assert "NOT exact" not in report.plan and f"from the range start {FIRST}" in report.plan
    for frame in range(FIRST + 40, LAST + 1):
        for name in ("a", "fg"):
            np.testing.assert_array_equal(_pixels(out / f"{name}.{frame}.exr"), _pixels(whole / f"{name}.{frame}.exr"))


def test_a_frame_with_its_alpha_but_no_foreground_keeps_its_alpha_file_untouched(shot, rvm_model, tmp_path):
    pattern, whole = shot
    out = _copy(whole, tmp_path / "out", range(FIRST, LAST + 1))
    partly = FIRST + 44
    (out / f"fg.{partly}.exr").unlink()  # the render was killed between the alpha and the foreground
    before = _stamps(out)
    report = render_sequence(pattern, f"{FIRST}-{LAST}", _settings(out), resume=True, model=rvm_model, progress=False)
    assert report.written == [partly] and report.kept == 1 + 2 * (LAST - partly)
    after = _stamps(out)
    assert set(after) == set(before) | {f"fg.{partly}.exr"}
    for name, stamp in before.items():  # the alpha of that frame and every later plate: not rewritten
        assert after[name] == stamp, name
    np.testing.assert_array_equal(_pixels(out / f"fg.{partly}.exr"), _pixels(whole / f"fg.{partly}.exr"))


def test_beyond_the_resume_limit_the_plan_says_loudly_that_plates_are_not_exact(shot, rvm_model, tmp_path):
    pattern, whole = shot
    out = _copy(whole, tmp_path / "out", range(FIRST, FIRST + 40))
    report = render_sequence(pattern, f"{FIRST}-{LAST}", _settings(out), resume=True, resume_limit=4, preroll=2,
                             model=rvm_model, progress=False)
    assert not report.exact and report.prerolled == 2 and len(report.written) == 8
    assert report.plan.startswith("warning:") and "NOT exact" in report.plan
    assert f"cold state at {FIRST + 38}" in report.plan and "--resume-limit" in report.plan


def test_a_complete_render_resumed_runs_nothing_and_touches_nothing(shot, rvm_model, tmp_path):
    pattern, whole = shot
    out = _copy(whole, tmp_path / "out", range(FIRST, LAST + 1))
    before = _stamps(out)
    report = render_sequence(pattern, f"{FIRST}-{LAST}", _settings(out), resume=True, model=rvm_model, progress=False)
    assert report.written == [] and report.prerolled == 0 and report.skipped == COUNT
    assert report.plan.startswith("nothing to resume")
    assert _stamps(out) == before


def test_a_stepped_range_resumes_with_the_skipped_frames_prerolled(shot, rvm_model, tmp_path):
    pattern, whole = shot
    out = _copy(whole, tmp_path / "out", range(FIRST, FIRST + 40, 2))  # 1001, 1003 ... 1039 done
    report = render_sequence(pattern, f"{FIRST}-{LAST}x2", _settings(out), resume=True, model=rvm_model, progress=False)
    assert sorted(report.written) == list(range(FIRST + 40, LAST + 1, 2))
    # The 20 complete frames, the 20 skipped before 1041 and the 3 skipped between the written ones.
    assert report.exact and report.prerolled == 43
    for frame in report.written:
        for name in ("a", "fg"):
            np.testing.assert_array_equal(_pixels(out / f"{name}.{frame}.exr"), _pixels(whole / f"{name}.{frame}.exr"))


def test_a_plate_someone_else_put_there_is_not_complete(shot, tmp_path):
    pattern, whole = shot
    out = _copy(whole, tmp_path / "out", range(FIRST, FIRST + 3))
    (out / f"fg.{FIRST + 1}.exr").unlink()
    write_plate(out / f"fg.{FIRST + 1}.exr", np.zeros((64, 64, 3), np.float32), ["R", "G", "B"])  # not ours
    outputs = {"alpha": str(out / "a.####.exr"), "foreground": str(out / "fg.####.exr"), "rgba": None}  # as a CLI has them
    plan = plan_resume(range(FIRST, FIRST + 3), outputs)
    assert plan.write_from == 1 and plan.run_from == FIRST and plan.exact
    assert plan.complete == {FIRST + 1: ("alpha",), FIRST + 2: ("alpha", "foreground")}


def test_the_plan_starts_at_the_shot_start_when_the_range_starts_mid_shot(tmp_path):
    # Nothing on disk: the whole range is to write, pre-rolled from the shot's first frame.
    outputs = {"alpha": str(tmp_path / "a.####.exr")}
    plan = plan_resume([1020, 1021], outputs, shot_start=FIRST)
    assert (plan.write_from, plan.run_from, plan.exact) == (0, FIRST, True)
    far = plan_resume([3000, 3001], outputs, shot_start=FIRST, preroll=8)
    assert (far.run_from, far.exact) == (2992, False) and "shot start 1001" in far.describe()
