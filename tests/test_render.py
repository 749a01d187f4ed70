"""Batch rendering of EXR sequences: colour, data windows, highlights, atomic plates, resume, errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from bridge_server.cli import main
from rvm_engine.clip import ClipSettings
from rvm_engine.colour import SCENE_LINEAR_REC709, SRGB_ENCODED, PlateColour
from rvm_engine.plates import read_plate
from rvm_engine.render import render_sequence
from rvm_engine.session import MattingSession

FIRST = 1001


def _convert(rgb: np.ndarray, src: str, dst: str) -> np.ndarray:
    buf = oiio.ImageBufAlgo.colorconvert(oiio.ImageBuf(np.ascontiguousarray(rgb)), src, dst)
    return np.asarray(buf.get_pixels(oiio.FLOAT), np.float32).reshape(rgb.shape)


def _write_exr(path: Path, rgb: np.ndarray, data_window=None, extra_channels: bool = False) -> None:
    """An EXR as a host writes it: optional data window inside the display window, optional extra channels."""
    h, w = rgb.shape[:2]
    x, y, dw, dh = data_window or (0, 0, w, h)
    pixels = rgb[y : y + dh, x : x + dw]
    names = ["R", "G", "B"]
    if extra_channels:
        pixels = np.concatenate([pixels, np.ones_like(pixels[..., :1]), pixels[..., :1] * 0.5], axis=-1)
        names += ["A", "depth.Z"]
    spec = oiio.ImageSpec(dw, dh, len(names), "half")
    spec.channelnames = tuple(names)
    spec.x, spec.y = x, y
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, w, h
    spec.attribute("PixelAspectRatio", 2.0)
    spec.attribute("compression", "zip")
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec) and out.write_image(np.ascontiguousarray(pixels)) and out.close()


@pytest.fixture(scope="module")
def linear_shot(tmp_path_factory, portrait_clip):
    """The sample clip as scene-linear Rec.709 EXRs with highlights above 1.0 on the subject and a
    data window smaller than the display window; returns (pattern, display-window plates in linear)."""
    folder = tmp_path_factory.mktemp("linear_shot")
    plates = []
    window = (6, 4, portrait_clip.shape[2] - 12, portrait_clip.shape[1] - 10)
    for i, frame in enumerate(portrait_clip):
        linear = _convert(frame, SRGB_ENCODED, SCENE_LINEAR_REC709)
        linear[120:140, 100:120] = (4.0, 3.5, 3.0)  # a specular glint on the suit, well above 1.0
        path = folder / f"shot.{FIRST + i:04d}.exr"
        _write_exr(path, linear, window, extra_channels=True)
        # The reference: the half values on disk over the display window, zero outside the data window.
        full = np.zeros_like(linear)
        x, y, w, h = window
        full[y : y + h, x : x + w] = linear[y : y + h, x : x + w].astype(np.float16)
        plates.append(full)
    return str(folder / "shot.####.exr"), plates


def _alpha(path: str) -> np.ndarray:
    return np.asarray(oiio.ImageBuf(path).get_pixels(oiio.FLOAT))[..., 0]


def test_linear_exr_sequence_renders_to_alpha_and_foreground_plates(rvm_model, linear_shot, tmp_path):
    pattern, plates = linear_shot
    out = tmp_path / "out"
    settings = ClipSettings(alpha=str(out / "a.####.exr"), foreground=str(out / "fg.####.exr"), downsample_ratio=0.5)
    report = render_sequence(pattern, f"{FIRST}-{FIRST + 7}", settings, model=rvm_model, progress=False)
    assert sorted(report.written) == list(range(FIRST, FIRST + 8))

    colour = PlateColour(SCENE_LINEAR_REC709)
    session = MattingSession(rvm_model, downsample_ratio=0.5)
    for i, plate in enumerate(plates):
        frame = FIRST + i
        model_rgb, _ = colour.to_model(plate)
        _, pha = session.run(model_rgb)
        alpha_plate = str(out / f"a.{frame:04d}.exr")
        alpha = _alpha(alpha_plate)
        assert np.abs(alpha - pha).max() <= 1e-3
        spec = oiio.ImageInput.open(alpha_plate).spec()
        assert spec.channelnames == ("A",)
        assert (spec.full_width, spec.full_height) == (plate.shape[1], plate.shape[0])
        assert spec.get_float_attribute("PixelAspectRatio") == 2.0
        assert spec.get_string_attribute("rvm:variant") == "mobilenetv3"
        assert spec.get_int_attribute("rvm:frame") == frame

        fg = read_plate(out / f"fg.{frame:04d}.exr").pixels
        solid = pha > 0.98
        # Foreground is in the plate's linear space: where the subject is solid it is the plate
        # (the model barely corrects it), highlights above 1.0 included.
        hot = np.zeros_like(solid)
        hot[120:140, 100:120] = True
        assert (plate[hot & solid] > 1.5).all() and (fg[hot & solid] > 1.5).all()
        assert np.median(np.abs(fg[solid] - plate[solid])) < 0.02


def test_acescg_plates_render_end_to_end(rvm_model, portrait_clip, tmp_path):
    from rvm_engine.colour import PlateColour

    src = tmp_path / "src"
    src.mkdir()
    aces = []
    for i, frame in enumerate(portrait_clip[:3]):
        plate = _convert(frame, SRGB_ENCODED, "ACEScg")
        _write_exr(src / f"aces.{FIRST + i:04d}.exr", plate)
        aces.append(read_plate(src / f"aces.{FIRST + i:04d}.exr").pixels)
    settings = ClipSettings(alpha=str(tmp_path / "a.####.exr"), foreground=str(tmp_path / "fg.####.exr"),
                            colour_space="ACEScg", downsample_ratio=0.5)
    render_sequence(str(src / "aces.####.exr"), None, settings, model=rvm_model, progress=False)
    session = MattingSession(rvm_model, downsample_ratio=0.5)
    colour = PlateColour("ACEScg")
    for i, plate in enumerate(aces):
        model_rgb, _ = colour.to_model(plate)
        # ACEScg -> model sRGB recovers the sRGB frame the plate was made from.
        assert np.abs(model_rgb - portrait_clip[i]).max() < 0.01
        _, pha = session.run(model_rgb)
        assert np.abs(_alpha(str(tmp_path / f"a.{FIRST + i:04d}.exr")) - pha).max() <= 1e-3
        fg = read_plate(tmp_path / f"fg.{FIRST + i:04d}.exr").pixels
        solid = pha > 0.98
        assert np.median(np.abs(fg[solid] - plate[solid])) < 0.02


def test_rgba_plate_is_premultiplied_by_default_and_straight_on_request(rvm_model, linear_shot, tmp_path):
    pattern, _ = linear_shot
    for straight in (False, True):
        out = tmp_path / ("straight" if straight else "premult")
        settings = ClipSettings(rgba=str(out / "rgba.####.exr"), foreground=str(out / "fg.####.exr"),
                                rgba_premultiplied=not straight, downsample_ratio=0.5)
        render_sequence(pattern, str(FIRST), settings, model=rvm_model, progress=False)
        rgba = read_plate(out / f"rgba.{FIRST}.exr").pixels
        a = _alpha_channel(out / f"rgba.{FIRST}.exr")
        fg = read_plate(out / f"fg.{FIRST}.exr").pixels
        expected = fg if straight else fg * a[..., None]
        assert np.abs(rgba - expected).max() < 2e-2 * max(1.0, float(np.abs(expected).max()))


def _alpha_channel(path: Path) -> np.ndarray:
    return np.asarray(oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT))[..., 3]


def test_a_render_killed_midway_leaves_only_complete_plates_and_resume_finishes_it(tmp_path, portrait_clip):
    src = tmp_path / "src"
    src.mkdir()
    frames = 64  # long enough that the kill after the third plate always lands mid-render
    big = np.concatenate([portrait_clip[:, ::2, ::2]] * 8)[:frames]
    for i, frame in enumerate(big):
        _write_exr(src / f"kill.{FIRST + i:04d}.exr", _convert(frame, SRGB_ENCODED, SCENE_LINEAR_REC709))
    out = tmp_path / "out"
    args = [str(src / "kill.####.exr"), "--alpha", str(out / "a.####.exr"), "--foreground", str(out / "fg.####.exr"),
            "--downsample-ratio", "0.5", "--no-progress"]
    cmd = [sys.executable, "-m", "bridge_server.cli", "render", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(out.glob("fg.*.exr"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    done = sorted(out.glob("fg.*.exr"))
    assert 3 <= len(done) < frames, "the render was not caught midway"
    for plate in out.glob("fg.*.exr"):  # every plate present reads whole
        assert read_plate(plate).pixels.shape == big.shape[1:]
    for plate in out.glob("a.*.exr"):
        assert _alpha(str(plate)).shape == big.shape[1:3]

    assert main(["render", *args, "--resume"]) == 0
    for i in range(frames):
        assert (out / f"a.{FIRST + i:04d}.exr").is_file() and (out / f"fg.{FIRST + i:04d}.exr").is_file()

    # The resumed frames match an uninterrupted render: the pre-roll reached back to the first frame.
    whole = tmp_path / "whole"
    assert main(["render", *args[:1], "--alpha", str(whole / "a.####.exr"), "--downsample-ratio", "0.5", "--no-progress"]) == 0
    for i in range(frames):
        np.testing.assert_array_equal(_alpha(str(out / f"a.{FIRST + i:04d}.exr")), _alpha(str(whole / f"a.{FIRST + i:04d}.exr")))


def test_resume_prerolls_from_the_range_start_whatever_the_preroll_and_reports_it(rvm_model, linear_shot, tmp_path,
                                                                                   capsys):
    pattern, _ = linear_shot
    out = tmp_path / "out"
    args = ["render", pattern, "--frames", f"{FIRST}-{FIRST + 7}", "--alpha", str(out / "a.####.exr"),
            "--downsample-ratio", "0.5", "--no-progress"]
    assert main(args) == 0
    for frame in (FIRST + 5, FIRST + 6, FIRST + 7):
        (out / f"a.{frame:04d}.exr").unlink()
    capsys.readouterr()
    # Five frames in is well within the exact-resume limit: --preroll 3 does not cut the pre-roll short.
    assert main([*args, "--resume", "--preroll", "3"]) == 0
    said = capsys.readouterr().out
    assert "resumed after 5 complete frames, pre-rolled 5" in said and "wrote 3 frames" in said


def test_cancel_stops_after_the_frames_in_flight_are_written(rvm_model, linear_shot, tmp_path):
    import threading

    pattern, _ = linear_shot
    cancel = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        if done >= 2:
            cancel.set()

    settings = ClipSettings(alpha=str(tmp_path / "a.####.exr"), downsample_ratio=0.5)
    report = render_sequence(pattern, None, settings, model=rvm_model, cancel=cancel, progress=progress)
    assert report.cancelled and 2 <= len(report.written) < 8
    assert sorted(p.name for p in tmp_path.glob("a.*.exr")) == [f"a.{f:04d}.exr" for f in sorted(report.written)]


@pytest.mark.parametrize("case", ["corrupt", "gap", "one_channel", "colour_space", "unwritable", "no_output"])
def test_bad_input_is_a_clear_error_naming_the_file_and_the_fix(case, tmp_path, capsys, portrait_clip):
    src = tmp_path / "src"
    src.mkdir()
    linear = _convert(portrait_clip[0], SRGB_ENCODED, SCENE_LINEAR_REC709)
    for i in range(3):
        _write_exr(src / f"p.{FIRST + i:04d}.exr", linear)
    args = ["render", str(src / "p.####.exr"), "--frames", f"{FIRST}-{FIRST + 2}", "--alpha", str(tmp_path / "o" / "a.####.exr"), "--no-progress"]
    expect = []
    if case == "corrupt":
        bad = src / f"p.{FIRST + 1:04d}.exr"
        bad.write_bytes(bad.read_bytes()[:300])
        expect = [str(bad), "re-render or re-copy"]
    elif case == "gap":
        (src / f"p.{FIRST + 1:04d}.exr").unlink()
        expect = [str(FIRST + 1), "missing"]
    elif case == "one_channel":
        one = src / f"p.{FIRST:04d}.exr"
        buf = oiio.ImageBuf(oiio.ImageSpec(32, 32, 1, "half"))
        assert buf.write(str(one))
        expect = [str(one), "R, G and B"]
    elif case == "colour_space":
        args += ["--colour-space", "Linear Rec.7O9"]
        expect = ["Linear Rec.7O9", "Linear Rec.709 (sRGB)"]
    elif case == "unwritable":
        (tmp_path / "afile").write_text("not a folder")
        args[5] = str(tmp_path / "afile" / "a.####.exr")
        expect = [str(tmp_path / "afile")]
    else:
        del args[4:6]
        expect = ["--alpha"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    for text in expect:
        assert text.lower() in err.lower(), err
    written = sorted((tmp_path / "o").glob("*")) if (tmp_path / "o").exists() else []
    # Nothing half-written: at most the frames before a corrupt one, each whole.
    assert [p.name for p in written] == ([f"a.{FIRST}.exr"] if case == "corrupt" else [])
    for plate in written:
        assert _alpha(str(plate)).shape == linear.shape[:2]


def test_a_stepped_range_prerolls_the_skipped_frames_so_each_plate_matches_a_full_render(rvm_model, linear_shot, tmp_path):
    pattern, _ = linear_shot
    full = ClipSettings(alpha=str(tmp_path / "full" / "a.####.exr"), downsample_ratio=0.5)
    stepped = ClipSettings(alpha=str(tmp_path / "twos" / "a.####.exr"), downsample_ratio=0.5)
    render_sequence(pattern, f"{FIRST}-{FIRST + 7}", full, model=rvm_model, progress=False)
    report = render_sequence(pattern, f"{FIRST}-{FIRST + 6}x2", stepped, model=rvm_model, progress=False)
    assert sorted(report.written) == [FIRST, FIRST + 2, FIRST + 4, FIRST + 6] and report.prerolled == 3
    assert sorted(p.name for p in (tmp_path / "twos").iterdir()) == [f"a.{f}.exr" for f in sorted(report.written)]
    for frame in report.written:
        np.testing.assert_array_equal(_alpha(str(tmp_path / "twos" / f"a.{frame}.exr")),
                                      _alpha(str(tmp_path / "full" / f"a.{frame}.exr")))


def test_a_sequence_rendered_on_twos_runs_its_frames_back_to_back(rvm_model, portrait_clip, tmp_path):
    src = tmp_path / "twos"
    src.mkdir()
    for i in range(0, 6, 2):
        _write_exr(src / f"p.{FIRST + i:04d}.exr", _convert(portrait_clip[i], SRGB_ENCODED, SCENE_LINEAR_REC709))
    report = render_sequence(str(src / "p.####.exr"), f"{FIRST}-{FIRST + 4}x2",
                             ClipSettings(alpha=str(tmp_path / "a.####.exr"), downsample_ratio=0.5),
                             model=rvm_model, progress=False)
    assert sorted(report.written) == [FIRST, FIRST + 2, FIRST + 4] and report.prerolled == 0


def test_a_reversed_or_unsorted_range_runs_in_frame_order_like_a_forward_render(rvm_model, linear_shot, tmp_path):
    pattern, _ = linear_shot
    renders = {}
    for name, frames in [("forward", f"{FIRST}-{FIRST + 3}"), ("reversed", f"{FIRST + 3}-{FIRST}"),
                         ("unsorted", f"{FIRST + 2},{FIRST},{FIRST + 3},{FIRST + 1}")]:
        render_sequence(pattern, frames, ClipSettings(alpha=str(tmp_path / name / "a.####.exr"), downsample_ratio=0.5),
                        model=rvm_model, progress=False)
        renders[name] = [_alpha(str(tmp_path / name / f"a.{FIRST + i}.exr")) for i in range(4)]
    for name in ("reversed", "unsorted"):
        for a, b in zip(renders[name], renders["forward"]):
            np.testing.assert_array_equal(a, b)


def test_resume_renders_again_a_plate_left_empty_or_broken_by_someone_else(rvm_model, linear_shot, tmp_path, capsys):
    pattern, _ = linear_shot
    out = tmp_path / "out"
    args = ["render", pattern, "--frames", f"{FIRST}-{FIRST + 3}", "--alpha", str(out / "a.####.exr"),
            "--downsample-ratio", "0.5", "--no-progress"]
    assert main(args) == 0
    (out / f"a.{FIRST + 2}.exr").write_bytes(b"")
    (out / f"a.{FIRST + 3}.exr").write_bytes(b"garbage, not an EXR header")
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    assert "resumed after 2 complete frames" in capsys.readouterr().out
    for frame in (FIRST + 2, FIRST + 3):
        assert _alpha(str(out / f"a.{frame}.exr")).shape == (256, 224)
    # Everything done: a resume has nothing to run, not even pre-roll.
    assert main([*args, "--resume"]) == 0
    assert "wrote 0 frames" in (said := capsys.readouterr().out) and "pre-rolled 0" in said


def test_a_negative_preroll_is_refused_by_the_command_line(linear_shot, capsys):
    pattern, _ = linear_shot
    with pytest.raises(SystemExit) as exited:
        main(["render", pattern, "--alpha", "/tmp/unused.####.exr", "--resume", "--preroll", "-5"])
    assert exited.value.code == 2 and "0 or more" in capsys.readouterr().err


@pytest.mark.parametrize("device, message", [("tpu", "not a device name"), ("meta", "not supported"), ("cuda:7", "CUDA GPU")])
def test_a_device_this_machine_lacks_is_one_clear_line(linear_shot, tmp_path, capsys, device, message):
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has eight GPUs")
    pattern, _ = linear_shot
    code = main(["render", pattern, "--frames", str(FIRST), "--alpha", str(tmp_path / "a.####.exr"),
                 "--device", device, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err
