"""Choosing a downsample ratio: auto follows the official table, and `rvm-bridge ratios` lets an
artist compare ratios on their own shot (a table, a suggestion and a contact sheet)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from bridge_server.cli import main
from bridge_server.client.errors import BadMessage, BadParameter, PathOutsideRoots
from bridge_server.client.parameters import PARAMETERS_BY_NAME, TRY_RATIOS, TRY_RATIOS_PREROLL
from bridge_server.client.protocol import decode_request, encode, request_header
from rvm_engine.clip import ClipSettings
from rvm_engine.contact_sheet import HEADER_HEIGHT, LABEL_HEIGHT, TILE_HEIGHT, write_sheet
from rvm_engine.errors import FrameInputError, PlateError
from rvm_engine.matte_metrics import busiest_edge_box, dtssd, mean_alpha_difference
from rvm_engine.ratio_guidance import OFFICIAL_TABLE, guided_ratio
from rvm_engine.ratio_sweep import DEFAULT_PREROLL, DEFAULT_RATIOS, sweep_ratios
from rvm_engine.render import render_sequence
from rvm_engine.sample import write_sample_plates
from rvm_engine.session import MattingSession

RATIOS = (0.25, 0.5, 1.0)
STRETCH = "1007-1012"


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """The sample shot, small: twelve frames panning across the portrait, and twelve of it standing still."""
    root = tmp_path_factory.mktemp("ratios")
    return {"moving": write_sample_plates(root / "moving", count=12, width=192, height=224, step=6),
            "still": write_sample_plates(root / "still", count=12, width=192, height=224, step=0), "root": root}


@pytest.fixture(scope="module")
def sweeps(shots, rvm_model):
    return {name: sweep_ratios(shots[name], STRETCH, RATIOS, preroll=6, model=rvm_model) for name in ("moving", "still")}


# -- auto follows the official guidance ------------------------------------------------------------------------------
@pytest.mark.parametrize("size", sorted(OFFICIAL_TABLE))
def test_auto_gives_the_official_tables_ratio_for_720p_1080p_and_4k_in_both_framings(size):
    width, height = size
    portrait, full_body = OFFICIAL_TABLE[size]
    assert guided_ratio(height, width, "portrait") == pytest.approx(portrait)
    assert guided_ratio(height, width, "full-body") == pytest.approx(full_body)
    assert guided_ratio(width, height, "portrait") == pytest.approx(portrait)  # a vertical frame too


def test_auto_keeps_a_scope_frames_short_side_at_256_and_never_enlarges_a_small_frame():
    ratio = guided_ratio(1716, 4096, "portrait")  # 2.39:1: 480 px long would leave 201 px short
    assert int(1716 * ratio) >= 256 and ratio > 480 / 4096
    assert guided_ratio(448, 384, "portrait") == 1.0 and guided_ratio(448, 384, "full-body") == 1.0
    with pytest.raises(FrameInputError, match="framing 'medium'"):
        guided_ratio(1080, 1920, "medium")


def test_a_session_on_auto_picks_the_framings_ratio_from_its_first_frame_and_keeps_it(rvm_model):
    portrait, full_body = MattingSession(rvm_model), MattingSession(rvm_model, framing="full-body")
    for session in (portrait, full_body):
        session.run(np.zeros((540, 960, 3), np.float32))
    assert portrait.downsample_ratio == pytest.approx(0.5)  # 480 px on the long side
    assert full_body.downsample_ratio == pytest.approx(0.8)  # 768 px on the long side
    portrait.reset()
    assert portrait.downsample_ratio is None


def test_plates_rendered_on_auto_record_the_ratio_actually_used(tmp_path, rvm_model):
    source = write_sample_plates(tmp_path / "plates", count=2, width=512, height=288, step=4)
    settings = ClipSettings(alpha=str(tmp_path / "out" / "a.####.exr"), downsample_ratio=None)
    os.makedirs(tmp_path / "out")
    render_sequence(source, None, settings, progress=False)
    spec = oiio.ImageInput.open(str(tmp_path / "out" / "a.1002.exr")).spec()
    assert spec.getattribute("rvm:downsample_ratio") == pytest.approx(480 / 512)
    assert spec.getattribute("rvm:downsample_ratio_from") == "auto"
    assert spec.getattribute("rvm:framing") == "portrait"


def test_the_framing_is_a_clip_parameter_hosts_and_the_command_line_see():
    framing = PARAMETERS_BY_NAME["framing"]
    assert framing.choices == ("portrait", "full-body") and framing.default == "portrait"
    assert "0.25 / 0.4" in PARAMETERS_BY_NAME["downsample_ratio"].help
    assert tuple(DEFAULT_RATIOS) == TRY_RATIOS and DEFAULT_PREROLL == TRY_RATIOS_PREROLL  # client and engine agree


# -- the figures ---------------------------------------------------------------------------------------------------
def test_dtssd_is_zero_on_a_still_matte_positive_on_a_moving_one_and_scaled_as_the_paper():
    still = np.full((5, 8, 8), 0.5, np.float32)
    assert dtssd(still) == 0.0
    moving = np.zeros((3, 4, 4), np.float32)
    moving[1, :2] = 1.0  # half the pixels change by 1, then change back
    assert dtssd(moving) == pytest.approx(100 * np.sqrt(0.5))
    assert dtssd(moving, truth=moving) == 0.0  # with ground truth it counts only the wrong change
    with pytest.raises(FrameInputError, match="at least two frames"):
        dtssd(still[:1])


def test_mean_alpha_difference_is_zero_for_one_matte_and_one_for_opposites():
    alpha = np.random.default_rng(0).random((6, 6)).astype(np.float32)
    assert mean_alpha_difference(alpha, alpha) == 0.0
    assert mean_alpha_difference(np.zeros((2, 2)), np.ones((2, 2))) == 1.0


def test_the_zoomed_crop_sits_on_the_top_of_the_subject_where_the_hair_is():
    alpha = np.zeros((200, 100), np.float32)
    alpha[40:200, 30:70] = 1.0  # a standing figure
    alpha[150:160, 0:100] = np.linspace(0, 1, 100)  # a busy soft edge low down (arms, a prop)
    x, y, w, h = busiest_edge_box(alpha, 40)
    assert y + h // 2 <= 40 + 160 // 4 and w == h == 40


def test_the_sweep_measures_each_ratio_on_the_plates(sweeps):
    moving = sweeps["moving"]
    assert [t.ratio for t in moving.trials] == list(RATIOS) and moving.frames == list(range(1007, 1013))
    assert moving.preroll_frames == list(range(1001, 1007))
    assert [t.size for t in moving.trials] == [(48, 56), (96, 112), (192, 224)]
    assert moving.trials[-1].mean_difference == 0.0  # the highest ratio against itself
    assert all(t.mean_difference > 0 for t in moving.trials[:-1])
    assert moving.trials[0].mean_difference > moving.trials[1].mean_difference  # lower erodes more
    assert all(t.ms_per_frame > 0 for t in moving.trials)
    assert moving.suggested in RATIOS and moving.reason
    for trial in moving.trials:
        assert f"{trial.ratio:>6g}" in moving.table()


def test_flicker_is_tiny_on_a_still_shot_and_large_on_a_panning_one(sweeps):
    for still, moving in zip(sweeps["still"].trials, sweeps["moving"].trials):
        assert moving.dtssd > 5.0
        assert still.dtssd < moving.dtssd / 20  # the recurrent state settles, but is not frozen


def test_a_stretch_of_one_frame_or_ratios_out_of_range_are_refused_with_what_to_do(shots, rvm_model):
    with pytest.raises(FrameInputError, match="at least two frames"):
        sweep_ratios(shots["moving"], "1007", RATIOS, model=rvm_model)
    with pytest.raises(FrameInputError, match=r"\(0, 1\]"):
        sweep_ratios(shots["moving"], STRETCH, (0.5, 1.5), model=rvm_model)


# -- the contact sheet ---------------------------------------------------------------------------------------------
def test_the_contact_sheet_has_a_labelled_row_per_ratio_with_different_crops(sweeps, tmp_path):
    sweep = sweeps["moving"]
    path = write_sheet(sweep, str(tmp_path / "ratios.png"))
    image = oiio.ImageInput.open(path)
    spec = image.spec()
    pixels = image.read_image(0, 0, 0, 3, oiio.FLOAT)
    image.close()
    row = LABEL_HEIGHT + TILE_HEIGHT + 6
    assert spec.height == HEADER_HEIGHT + len(RATIOS) * row and spec.nchannels == 3
    assert spec.getattribute("rvm:ratios") == "0.25,0.5,1"
    assert spec.getattribute("rvm:labels_drawn") == "yes" and spec.getattribute("rvm:suggested_ratio") == f"{sweep.suggested:g}"
    description = spec.getattribute("ImageDescription").splitlines()
    for trial in sweep.trials:
        assert any(line.startswith(f"ratio {trial.ratio:g} ") and f"{trial.size[0]}x{trial.size[1]}" in line
                   and "ms/frame" in line for line in description)
    crops = []
    for index in range(len(RATIOS)):
        top = HEADER_HEIGHT + index * row
        label = pixels[top:top + LABEL_HEIGHT, :400]
        assert (label.max(axis=-1) > 0.8).sum() > 200  # text was drawn in the row's label strip
        crops.append(pixels[top + LABEL_HEIGHT:top + LABEL_HEIGHT + TILE_HEIGHT, -TILE_HEIGHT:])
    assert np.abs(crops[0] - crops[-1]).mean() > 0.01  # the alpha crops show the ratios' difference
    with pytest.raises(PlateError, match="not a plate rvm-bridge wrote"):
        write_sheet(sweep, sweeps_source_png(tmp_path))


def sweeps_source_png(folder: Path) -> str:
    """A PNG that is not ours, where a sheet might be written by mistake."""
    path = str(folder / "photo.png")
    out = oiio.ImageOutput.create(path)
    out.open(path, oiio.ImageSpec(4, 4, 3, oiio.UINT8))
    out.write_image(np.zeros((4, 4, 3), np.uint8))
    out.close()
    return path


# -- the command, in process and through a bridge ------------------------------------------------------------------
def test_the_ratios_command_prints_the_table_and_writes_the_sheet(shots, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert main(["ratios", shots["moving"], "--frames", "1011-1012", "--ratios", "0.5,0.25", "--preroll", "2",
                 "--sheet", str(sheet), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert [row["ratio"] for row in figures["rows"]] == [0.25, 0.5] and figures["rows"][1]["mean_difference"] == 0
    assert figures["sheet"] == str(sheet) and sheet.stat().st_size > 1000
    assert main(["ratios", shots["moving"], "--frames", "1012", "--sheet", str(sheet)]) == 1
    assert "at least two frames" in capsys.readouterr().err


def test_try_ratios_requests_are_checked_before_anything_runs():
    def decode(**fields):
        return decode_request(encode(request_header("try_ratios", "r1", **fields)))

    asked = decode(source="/s/a.####.exr", frames="1-8").ratios
    assert asked.ratios == list(TRY_RATIOS) and asked.settings["framing"] == "portrait" and asked.sheet is None
    with pytest.raises(BadParameter, match=r"\(0.0, 1.0\]"):
        decode(source="/s/a.####.exr", frames="1-8", ratios=[0.5, 2])
    with pytest.raises(BadParameter, match="takes no setting"):
        decode(source="/s/a.####.exr", frames="1-8", settings={"compression": "zip"})
    with pytest.raises(BadMessage, match="stretch"):
        decode(source="/s/a.####.exr", frames=None)


def test_a_host_asks_a_running_bridge_for_the_sheet_and_gets_the_in_process_figures(shots, sweeps, tmp_path):
    from bridge_server.client.client import BridgeClient
    from bridge_server.client.launch import ServerProcess
    from bridge_server.client.render import render_through_bridge

    root = shots["root"]
    sheet = str(root / "from_bridge.png")
    with ServerProcess([str(root)], log_path=str(tmp_path / "bridge.log")) as server:
        command = [sys.executable, "-m", "bridge_server", "ratios", shots["moving"], "--frames", STRETCH,
                   "--ratios", ",".join(map(str, RATIOS)), "--preroll", "6", "--sheet", sheet, "--server",
                   server.address]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
        assert done.returncode == 0, done.stderr
        assert "<- suggested" in done.stdout and f"contact sheet: {sheet}" in done.stdout
        with BridgeClient(server.address, timeout=120) as client:
            reply = client.try_ratios(shots["moving"], STRETCH, RATIOS, preroll=6)  # figures only: no sheet
            assert reply["sheet"] is None
            outside = str(tmp_path / "elsewhere.png")
            with pytest.raises(PathOutsideRoots, match="outside the server's root"):
                client.try_ratios(shots["moving"], STRETCH, RATIOS, sheet=outside)
        alpha = str(root / "auto" / "a.####.exr")
        os.makedirs(root / "auto")
        summary = render_through_bridge(server.address, shots["moving"], "1001-1002", alpha=alpha,
                                        settings={"framing": "full-body"})
    assert oiio.ImageInput.open(sheet).spec().getattribute("rvm:ratios") == "0.25,0.5,1"
    for row, trial in zip(reply["rows"], sweeps["moving"].trials):
        assert row["ratio"] == trial.ratio and row["size"] == list(trial.size)
        assert row["mean_difference"] == pytest.approx(trial.mean_difference, abs=1e-4)
        assert row["dtssd"] == pytest.approx(trial.dtssd, rel=1e-3)
    assert [result.downsample_ratio for result in summary.results] == [1.0, 1.0]  # 224 px: auto never enlarges
    assert oiio.ImageInput.open(str(root / "auto" / "a.1002.exr")).spec().getattribute("rvm:framing") == "full-body"


# -- careless and hostile use ----------------------------------------------------------------------------------------
def test_a_stretch_with_gaps_steps_or_millions_of_frames_is_refused_before_any_plate_is_looked_for(shots, rvm_model):
    import time

    for frames in ("1001-1012x3", "1001-1003,1010-1012", [1001, 1005, 1009]):
        with pytest.raises(FrameInputError, match="gaps or steps; judge one unbroken stretch"):
            sweep_ratios(shots["moving"], frames, RATIOS, model=rvm_model)
    started = time.monotonic()
    with pytest.raises(FrameInputError, match="give 9999999 frames: judge at most 100"):
        sweep_ratios(shots["moving"], "1-9999999", RATIOS, model=rvm_model)  # was minutes of file checks
    with pytest.raises(PlateError, match="holds more than 10000000 frames"):
        sweep_ratios(shots["moving"], "1-1000000000", RATIOS, model=rvm_model)  # was fileseq's traceback
    assert time.monotonic() - started < 5
    # A frame listed twice (the protocol takes lists) is judged once, not run twice as a still pair.
    assert sweep_ratios(shots["moving"], [1011, 1011, 1012], [0.5], preroll=0, model=rvm_model).frames == [1011, 1012]


def test_a_sheet_that_cannot_be_written_is_said_before_any_ratio_runs(shots, tmp_path, capsys, monkeypatch):
    import rvm_engine.ratio_sweep

    def no_sweep(*args, **kwargs):
        raise AssertionError("the ratios ran before the sheet path was checked")

    monkeypatch.setattr(rvm_engine.ratio_sweep, "sweep_ratios", no_sweep)
    for sheet, reason in ((tmp_path / "missing" / "s.png", "does not exist"), (tmp_path / "s.jpg", "must be a .png"),
                          (sweeps_source_png(tmp_path), "not a plate rvm-bridge wrote")):
        assert main(["ratios", shots["moving"], "--frames", STRETCH, "--sheet", str(sheet)]) == 1
        assert reason in capsys.readouterr().err


def test_a_long_try_ratios_neither_holds_up_opening_clips_nor_runs_beside_another(shots, tmp_path):
    """try_ratios runs for minutes on real plates: on its own thread, one at a time (a second is told
    busy), while clips open and frames run as usual."""
    import threading
    import time

    from bridge_server.client.client import BridgeClient
    from bridge_server.server import BridgeServer
    from bridge_server.server_config import ServerConfig

    from .test_server_support import RawPeer

    server = BridgeServer(ServerConfig(roots=[str(shots["root"])], address="tcp://127.0.0.1:0", preload=()))
    running, release = threading.Event(), threading.Event()

    def slow_try_ratios(*args, **kwargs):
        running.set()
        release.wait(60)
        return {"rows": [], "suggested": 0.25}

    server.engine.try_ratios = slow_try_ratios
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    first, second = RawPeer(server.endpoint), RawPeer(server.endpoint)
    try:
        asked = dict(source=shots["moving"], frames=STRETCH, ratios=[0.25, 0.5])
        first.send(encode(request_header("try_ratios", "sweep-1", **asked)))
        assert running.wait(60)
        second.send(encode(request_header("try_ratios", "sweep-2", **asked)))
        header, _ = second.reply(10)
        assert header["error"]["code"] == "busy" and "one at a time" in header["error"]["message"]
        with BridgeClient(server.endpoint, timeout=20) as client:
            started = time.monotonic()
            clip = client.open_clip("beside", source=shots["moving"], first_frame=1001, inline_outputs=True)
            opened = time.monotonic() - started
            assert clip.frame(1001).frame == 1001
            assert opened < 10, f"open_clip waited {opened:.1f} s behind try_ratios"
            release.set()
            header, _ = first.reply(30)
            assert header["ok"] and header["suggested"] == 0.25
            assert client.status()["internal_errors"] == 0
    finally:
        release.set()
        first.close()
        second.close()
        server.stop()
        serving.join(30)


def test_a_sweep_that_would_hold_more_pixels_than_the_limit_is_refused_after_one_frame_is_read(shots, rvm_model,
                                                                                              monkeypatch):
    """12 ratios over 100 frames of a 4K shot would hold 60 GiB on a shared bridge; the limit is checked
    against the first frame's size before the rest are read."""
    import rvm_engine.ratio_sweep as ratio_sweep

    # 192x224: 4 bytes x 43008 px x (3 x 12 frames + 3 ratios x 6 frames) = 9.3 MB.
    monkeypatch.setattr(ratio_sweep, "MAX_SWEEP_BYTES", 8 * 2 ** 20)
    read = []
    real = ratio_sweep.read_plate
    monkeypatch.setattr(ratio_sweep, "read_plate", lambda path, **kw: read.append(path) or real(path, **kw))
    with pytest.raises(FrameInputError, match="would hold 0.0 GiB of pixels, over 0 GiB: judge fewer frames"):
        sweep_ratios(shots["moving"], STRETCH, RATIOS, preroll=6, model=rvm_model)
    assert len(read) == 1
    monkeypatch.setattr(ratio_sweep, "MAX_SWEEP_BYTES", 16 * 2 ** 20)
    assert len(sweep_ratios(shots["moving"], STRETCH, RATIOS, preroll=6, model=rvm_model).trials) == 3


def test_a_sheet_folder_swapped_for_a_symlink_during_the_sweep_does_not_lead_out_of_the_roots(shots, tmp_path,
                                                                                             monkeypatch):
    """The sheet is written minutes after the request was checked: its folder is checked again then,
    as frame outputs are."""
    import shutil
    import threading

    import rvm_engine.ratio_sweep as ratio_sweep
    from bridge_server.client.client import BridgeClient
    from bridge_server.server import BridgeServer
    from bridge_server.server_config import ServerConfig

    root = shots["root"]
    folder, outside = root / "sheets_swapped", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    real_sweep = ratio_sweep.sweep_ratios

    def sweep_then_swap(*args, **kwargs):
        sweep = real_sweep(*args, **kwargs)
        shutil.rmtree(folder)
        os.symlink(outside, folder)  # someone with write access under the root, mid-sweep
        return sweep

    monkeypatch.setattr(ratio_sweep, "sweep_ratios", sweep_then_swap)
    server = BridgeServer(ServerConfig(roots=[str(root)], address="tcp://127.0.0.1:0", preload=()))
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    try:
        with BridgeClient(server.endpoint, timeout=120) as client:
            with pytest.raises(PathOutsideRoots, match="contact sheet folder"):
                client.try_ratios(shots["moving"], "1011-1012", [0.5], preroll=0, sheet=str(folder / "s.png"))
            assert client.status()["internal_errors"] == 0
    finally:
        server.stop()
        serving.join(30)
        os.unlink(folder)
    assert not list(outside.iterdir())
