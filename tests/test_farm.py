"""Farm rendering with pre-rolled chunks: the chunk rule, real `openjd run`s of the generated
templates on a 24-frame shot, the OpenCue XML and Deadline files read back, shot lists, and
bad input refused in one line."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bridge_server.cli import build_parser, main
from rvm_engine.chunks import CHUNK_PREROLL, chunk_starts, contiguous_ranges, plan_chunk
from rvm_engine.errors import PlateError

from .test_server_support import FIRST, THREADS, frame_path, pixels, reference_render, write_shot

REPO = Path(__file__).resolve().parent.parent
FRAMES = list(range(FIRST, FIRST + 24))
NODE = f"{shlex.quote(sys.executable)} -m bridge_server"  # how the "render node" runs rvm-bridge
TOLERANCE = 1 / 255  # the bench's threshold: a boundary plate off by more is a visible pop


def openjd() -> str:
    found = shutil.which("openjd", path=str(Path(sys.executable).parent)) or shutil.which("openjd")
    assert found, "openjd-cli is a dev dependency (pip install -e '.[dev]')"
    return found


def node_env() -> dict:
    # The node runs this checkout on one thread, as the reference render does (thread counts change rounding).
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(THREADS)}


def run_openjd(*words: str, cwd: Path) -> str:
    done = subprocess.run([openjd(), *words], cwd=cwd, env=node_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def farm(*words: str, capsys=None) -> tuple[int, str, str]:
    code = main(["farm", *words])
    out, err = capsys.readouterr() if capsys else ("", "")
    return code, out, err


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    """A 24-frame portrait shot and its unbroken in-process render (alpha plates)."""
    root = tmp_path_factory.mktemp("farm")
    pattern = write_shot(str(root / "plates"), count=24)
    reference = reference_render(pattern, FRAMES, str(root / "unbroken"))
    return root, pattern, reference["alpha"]


def mtimes(pattern: str) -> dict:
    return {f: os.stat(frame_path(pattern, f)).st_mtime_ns for f in FRAMES}


# --- the rule ---------------------------------------------------------------------------------------

def test_a_chunk_pre_rolls_from_the_later_of_the_shot_start_and_preroll_frames_back():
    for first, shot_start, preroll in [(1017, 1001, 8), (1005, 1001, 8), (1001, 1001, 32), (1100, 990, 0)]:
        chunk = plan_chunk(range(first, first + 8), shot_start, preroll)
        assert chunk.run_from == max(shot_start, first - preroll)
        assert chunk.plan.to_write == list(range(first, first + 8))
    clipped = plan_chunk(range(1005, 1013), 1001, 32)
    assert clipped.clipped and "clipped to 4" in clipped.describe() and "shot starts at 1001" in clipped.describe()
    assert not plan_chunk(range(1041, 1049), 1001, 32).clipped


def test_farm_boundaries_can_fall_anywhere_because_each_task_plans_its_own_pre_roll():
    # OpenJD's adaptive chunking splits 1-10 into 1-4, 5-7, 8-10: no task assumes chunks of a fixed size.
    for first, last in [(1, 4), (5, 7), (8, 10)]:
        assert plan_chunk(range(first, last + 1), 1, 3).run_from == max(1, first - 3)
    assert contiguous_ranges([5, 1, 2, 3, 9, 10, 4]) == [(1, 5), (9, 10)]
    assert chunk_starts(1001, 1020, 8) == [(1001, 1008), (1009, 1016), (1017, 1020)]


def test_a_chunk_with_a_gap_or_under_one_frame_is_refused_in_words():
    with pytest.raises(PlateError, match="has a gap"):
        plan_chunk([1001, 1002, 1005], 1001, 8)
    with pytest.raises(PlateError, match="chunk size 0 must be at least 1"):
        chunk_starts(1001, 1010, 0)
    with pytest.raises(PlateError, match="after the chunk's first frame"):
        plan_chunk(range(1001, 1005), 1003, 8)


# --- OpenJD, really run -------------------------------------------------------------------------------

def test_openjd_run_of_the_chunked_template_writes_every_plate_once_equal_to_the_unbroken_render(shot, capsys):
    root, pattern, unbroken = shot
    jobs, alpha = root / "jobs", str(root / "farm_out" / "alpha.####.exr")
    code, out, _ = farm("openjd", pattern, "--out", str(jobs), "--alpha", alpha, "--chunk", "8",
                        "--command", NODE, capsys=capsys)
    assert code == 0
    template, fallback = jobs / "plate.template.yaml", jobs / "plate.fallback.yaml"
    for path in (template, fallback):
        assert "passes validation checks" in run_openjd("check", str(path), cwd=jobs)
    assert "CHUNK[INT]" in template.read_text() and "CONTIGUOUS" in template.read_text()

    log = run_openjd("run", str(template), "-p", f"file://{jobs / 'plate.params.json'}", cwd=jobs)
    # Each task says which chunk it kept and where it pre-rolled from; together they cover the shot once.
    chunks = [(int(a), int(b)) for a, b in re.findall(r"chunk (\d+)-(\d+): pre-rolling", log)]
    kept = [f for a, b in chunks for f in range(a, b + 1)]
    assert sorted(kept) == FRAMES and len(kept) == len(set(kept)) == 24
    assert len(chunks) == 3
    written = [int(n) for n in re.findall(r"wrote (\d+) frames", log)]
    assert sum(written) == 24
    # The measured default pre-roll reaches back to the shot start for every chunk of a 24-frame shot.
    assert CHUNK_PREROLL >= 16
    assert "pre-rolling 8 frames from 1001" in log and "pre-rolling 16 frames from 1001" in log
    assert "clipped to 8" in log
    for frame in FRAMES:
        difference = np.abs(pixels(frame_path(alpha, frame)) - pixels(frame_path(unbroken, frame)))
        assert difference.max() <= TOLERANCE, f"frame {frame} is {difference.max():.4f} off the unbroken render"

    # Re-running the middle task rewrites its eight plates (same pixels) and touches no other.
    before, before_pixels = mtimes(alpha), {f: pixels(frame_path(alpha, f)) for f in FRAMES}
    time.sleep(0.05)
    rerun = run_openjd("run", str(template), "-p", f"file://{jobs / 'plate.params.json'}",
                       "--task-param", "Frame=1009-1016", cwd=jobs)
    assert "chunk 1009-1016: pre-rolling 8 frames from 1001" in rerun
    after = mtimes(alpha)
    for frame in FRAMES:
        assert np.array_equal(pixels(frame_path(alpha, frame)), before_pixels[frame])
        assert (after[frame] != before[frame]) == (1009 <= frame <= 1016), frame
    assert sorted(os.listdir(root / "farm_out")) == sorted(os.path.basename(frame_path(alpha, f)) for f in FRAMES)


def test_a_fallback_task_equals_the_same_chunk_rendered_locally(shot, capsys, rvm_model):
    """One task per chunk start, run by openjd with a short pre-roll, against the batch renderer in
    this process with the same chunk: a farm's plates are the local renderer's."""
    import torch

    from rvm_engine.chunks import render_chunk
    from rvm_engine.clip import ClipSettings

    root, pattern, _ = shot
    jobs, alpha = root / "fallback_jobs", str(root / "fallback_out" / "alpha.####.exr")
    assert farm("openjd", pattern, "--out", str(jobs), "--alpha", alpha, "--chunk", "8", "--preroll", "4",
                "--command", NODE, capsys=capsys)[0] == 0
    log = run_openjd("run", str(jobs / "plate.fallback.yaml"), "-p", f"file://{jobs / 'plate.params.json'}",
                     "--task-param", "ChunkStart=1017", "--task-param", "ChunkEnd=1024", cwd=jobs)
    assert "chunk 1017-1024: pre-rolling 4 frames from 1013, not written" in log
    assert not os.path.exists(frame_path(alpha, 1016))  # only the task's own plates

    local = str(root / "local_chunk" / "alpha.####.exr")
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        report = render_chunk(pattern, "1017-1024", ClipSettings(alpha=local), shot_start=FIRST, preroll=4,
                              model=rvm_model, say=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    assert report.prerolled == 4 and sorted(report.written) == list(range(1017, 1025))
    for frame in range(1017, 1025):
        assert np.array_equal(pixels(frame_path(alpha, frame)), pixels(frame_path(local, frame))), frame


def test_a_chunk_near_the_shot_start_is_clipped_says_so_and_equals_the_unbroken_render(shot, rvm_model):
    import torch

    from rvm_engine.chunks import render_chunk
    from rvm_engine.clip import ClipSettings

    root, pattern, unbroken = shot
    out, said = str(root / "clipped" / "alpha.####.exr"), []
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        report = render_chunk(pattern, [1005, 1006, 1007], ClipSettings(alpha=out), preroll=32, model=rvm_model,
                              say=said.append)  # no shot start given: the first frame on disk
    finally:
        torch.set_num_threads(threads)
    assert report.prerolled == 4
    assert said == ["chunk 1005-1007: pre-rolling 4 frames from 1001, not written (pre-roll of 32 clipped to 4: "
                    "the shot starts at 1001; this chunk equals an unbroken render)"]
    for frame in (1005, 1006, 1007):
        assert np.array_equal(pixels(frame_path(out, frame)), pixels(frame_path(unbroken, frame)))


def test_a_frame_missing_inside_the_pre_roll_starts_the_pre_roll_after_it(shot, tmp_path, rvm_model):
    from rvm_engine.chunks import render_chunk
    from rvm_engine.clip import ClipSettings

    root, pattern, _ = shot
    plates = tmp_path / "plates"
    plates.mkdir()
    for frame in range(1001, 1017):
        if frame != 1010:  # a hole in the plates on disk
            os.symlink(frame_path(pattern, frame), plates / os.path.basename(frame_path(pattern, frame)))
    said: list = []
    report = render_chunk(str(plates / "plate.####.exr"), "1013-1016", ClipSettings(alpha=str(tmp_path / "a.####.exr")),
                          shot_start=FIRST, preroll=8, model=rvm_model, say=said.append)
    assert report.prerolled == 2 and sorted(report.written) == [1013, 1014, 1015, 1016]
    assert said == ["chunk 1013-1016: pre-rolling 2 frames from 1011, not written (pre-roll of 8 clipped to 2: "
                    "frame 1010 is not on disk, so the run starts cold after it)"]


# --- Deadline and OpenCue, read back ---------------------------------------------------------------------

def test_deadline_files_parse_and_each_task_runs_the_chunk_render_of_its_own_frames(shot, capsys):
    from bridge_server.farm.deadline import read_info

    root, pattern, _ = shot
    jobs, alpha = root / "deadline", str(root / "dl_out" / "alpha.####.exr")
    code, out, _ = farm("deadline", pattern, "--out", str(jobs), "--alpha", alpha, "--frames", "1001-1010,1015-1024",
                        "--chunk", "4", "--device", "cuda:0", capsys=capsys)
    assert code == 0 and "split into contiguous ranges 1001-1010, 1015-1024" in out
    stems = sorted(p.name[: -len(".job.info")] for p in jobs.glob("*.job.info"))
    assert stems == ["plate_1001-1010", "plate_1015-1024"]
    for stem, (first, last) in zip(stems, [(1001, 1010), (1015, 1024)]):
        job, plugin = read_info(str(jobs / f"{stem}.job.info")), read_info(str(jobs / f"{stem}.plugin.info"))
        assert job["Plugin"] == "CommandLine" and job["Frames"] == f"{first}-{last}" and job["ChunkSize"] == "4"
        assert plugin["Executable"] == "rvm-bridge"
        # Deadline's tasks: Frames in ChunkSize steps, tokens replaced in Arguments.
        for start, end in chunk_starts(first, last, int(job["ChunkSize"])):
            line = plugin["Arguments"].replace("<STARTFRAME>", str(start)).replace("<ENDFRAME>", str(end))
            args = build_parser().parse_args(shlex.split(line))
            assert args.command == "render" and args.chunk and args.frames == f"{start}-{end}"
            assert (args.input, args.alpha, args.device) == (pattern, alpha, "cuda:0")
            assert args.shot_start == FIRST and args.preroll == CHUNK_PREROLL


def test_the_opencue_outline_serialises_layers_ranges_chunks_and_clamped_commands(shot, capsys):
    import xml.etree.ElementTree as ET

    root, pattern, _ = shot
    jobs, alpha = root / "cue", str(root / "cue_out" / "alpha.####.exr")
    assert farm("opencue", pattern, "--out", str(jobs), "--alpha", alpha, "--frames", "1001-1010,1015-1024",
                "--chunk", "8", "--show", "testing", capsys=capsys)[0] == 0
    spec = ET.parse(jobs / "plate.cue.xml").getroot()
    assert spec.findtext("show") == "testing" and spec.findtext("shot") == "plate"
    layers = spec.findall("job/layers/layer")
    assert [(layer.get("name"), layer.findtext("range"), layer.findtext("chunk")) for layer in layers] == [
        ("matte_1001_1010", "1001-1010", "8"), ("matte_1015_1024", "1015-1024", "8")]
    for layer, within in zip(layers, ["1001-1010", "1015-1024"]):
        words = shlex.split(layer.findtext("cmd"))
        assert words[0] == "rvm-bridge"
        # An older Cuebot hands the last chunk 1009-1016 of 1001-1010: --within keeps 1009-1010.
        args = build_parser().parse_args(words[1:])
        assert args.frames == "#FRAME_START#-#FRAME_END#" and args.within == within and args.chunk
        assert (args.input, args.alpha, args.shot_start) == (pattern, alpha, FIRST)


def test_a_cuebot_that_cannot_be_reached_is_said_in_one_line_and_the_xml_is_still_written(shot, tmp_path, capsys):
    root, pattern, _ = shot
    code, _, err = farm("opencue", pattern, "--out", str(tmp_path / "cue"), "--alpha", str(tmp_path / "a.####.exr"),
                        "--cuebot", "127.0.0.1:1", capsys=capsys)
    assert code == 1 and "the Cuebot at 127.0.0.1:1 did not take the job" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "cue" / "plate.cue.xml").exists()


def test_a_task_handed_frames_past_the_layer_keeps_only_those_inside(shot, capsys):
    root, pattern, _ = shot
    code = main(["render", pattern, "--frames", "1030-1037", "--chunk", "--within", "1001-1024",
                 "--alpha", str(root / "none" / "a.####.exr")])
    out = capsys.readouterr().out
    assert code == 0 and "nothing to render" in out and not (root / "none").exists()


def test_deadline_arguments_keep_a_path_with_spaces_quotes_and_shell_characters_one_word(shot, tmp_path, capsys):
    """A plate folder a careless (or hostile) artist named: Deadline splits Arguments by the Windows rules on
    every platform, so a quote inside a word must be escaped, not end the word."""
    from bridge_server.farm.deadline import read_info

    root, pattern, _ = shot
    folder = tmp_path / 'the "final" plates'
    folder.mkdir()
    name = "a;touch PWNED $(touch PWNED2) it's"
    for frame in (FIRST, FIRST + 1):
        shutil.copy(frame_path(pattern, frame), folder / f"{name}.{frame}.exr")
    plates, alpha = str(folder / f"{name}.####.exr"), str(tmp_path / "out dir" / "a.####.exr")
    code, _, _ = farm("deadline", plates, "--out", str(tmp_path / "dl"), "--alpha", alpha, "--frames", "1001-1002",
                      capsys=capsys)
    assert code == 0
    (info,) = (tmp_path / "dl").glob("*.plugin.info")
    line = read_info(str(info))["Arguments"].replace("<STARTFRAME>", "1001").replace("<ENDFRAME>", "1002")
    args = build_parser().parse_args(shlex.split(line))  # a quote-escaped word reads the same by POSIX rules
    assert (args.input, args.alpha, args.frames, args.colour_space) == (plates, alpha, "1001-1002", "")
    assert not list(tmp_path.glob("PWNED*"))
    # The job is named after the plates, so its files take a name every file system holds.
    assert info.name == "a;touch_PWNED.plugin.info"


# --- shot lists ------------------------------------------------------------------------------------------

def test_a_shot_list_makes_one_job_per_shot(shot, tmp_path, capsys):
    root, pattern, _ = shot
    second = write_shot(str(tmp_path / "sh020"), count=6, name="sh020")
    table = tmp_path / "shots.csv"
    table.write_text(f"shot,input,frames,shot_start\nsh010,{pattern},1001-1012,\nsh020,sh020/sh020.####.exr,,\n")
    code, out, _ = farm("openjd", "--shots", str(table), "--out", str(tmp_path / "jobs"), "--alpha",
                        str(tmp_path / "out" / "{shot}" / "alpha.####.exr"), capsys=capsys)
    assert code == 0
    for name, frames in (("sh010", "1001-1012"), ("sh020", "1001-1006")):
        params = json.loads((tmp_path / "jobs" / f"{name}.params.json").read_text())
        assert params["AlphaPlates"] == str(tmp_path / "out" / name / "alpha.####.exr")
        assert f"default: {frames}" in (tmp_path / "jobs" / f"{name}.template.yaml").read_text()
    assert json.loads((tmp_path / "jobs" / "sh020.params.json").read_text())["InputPlates"] == second
    # A folder of sequences works the same way, one job per sequence.
    code, out, _ = farm("deadline", "--shots", str(tmp_path / "sh020"), "--out", str(tmp_path / "dl"), "--alpha",
                        str(tmp_path / "out" / "{shot}" / "alpha.####.exr"), capsys=capsys)
    assert code == 0 and (tmp_path / "dl" / "sh020.job.info").exists()
    # Two shots into one output pattern would overwrite each other.
    code, _, err = farm("openjd", "--shots", str(table), "--out", str(tmp_path / "jobs"), "--alpha",
                        str(tmp_path / "out" / "alpha.####.exr"), capsys=capsys)
    assert code == 1 and "put {shot} in the output patterns" in err


def test_a_shot_list_saved_by_a_spreadsheet_is_read_and_names_that_cannot_be_files_are_refused(shot, tmp_path,
                                                                                                capsys):
    root, pattern, _ = shot
    out = str(tmp_path / "out" / "{shot}" / "alpha.####.exr")
    # Excel's "CSV UTF-8" starts with a byte-order mark; hand-typed headers carry spaces and capitals.
    table = tmp_path / "excel.csv"
    table.write_bytes(f"\ufeffShot , Input\r\nsh010 , {pattern}\r\n".encode())
    code, out_text, err = farm("openjd", "--shots", str(table), "--out", str(tmp_path / "jobs"), "--alpha", out,
                               capsys=capsys)
    assert code == 0 and (tmp_path / "jobs" / "sh010.params.json").exists(), err
    refused = {
        "semicolons.csv": (f"shot;input\nsh010;{pattern}\n", "it needs comma-separated columns shot,input"),
        "escape.csv": (f"shot,input\n../../escape,{pattern}\n", "cannot name files"),
        "slash.csv": (f"shot,input\na/b,{pattern}\n", "cannot name files"),
        "case.csv": (f"shot,input\nSH010,{pattern}\nsh010,{pattern}\n", "SH010, sh010 appear twice"),
        "comma.csv": (f"shot,input\nsh010,/mnt/a,b/{pattern}\n", "line 2: more values than columns"),
    }
    for name, (text, reason) in refused.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        code, _, err = farm("openjd", "--shots", str(tmp_path / name), "--out", str(tmp_path / "bad"), "--alpha", out,
                            capsys=capsys)
        assert code == 1 and reason in err and len(err.strip().splitlines()) == 1, (name, err)
    (tmp_path / "utf16.csv").write_text(f"shot,input\nsh010,{pattern}\n", encoding="utf-16")
    code, _, err = farm("openjd", "--shots", str(tmp_path / "utf16.csv"), "--out", str(tmp_path / "bad"), "--alpha",
                        out, capsys=capsys)
    assert code == 1 and "is not UTF-8 text" in err and len(err.strip().splitlines()) == 1
    # --frames beside a shot list would be ignored: the list's columns say the frames of each shot.
    code, _, err = farm("openjd", "--shots", str(table), "--frames", "1001-1003", "--out", str(tmp_path / "bad"),
                        "--alpha", out, capsys=capsys)
    assert code == 1 and "put them in the shot list's frames and shot_start columns" in err
    assert not list(tmp_path.parent.glob("escape.*")) and not (tmp_path / "bad" / "a").exists()


# --- bad input --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("words, reason", [
    (["--chunk", "0"], "chunk size 0 must be at least 1 frame"),
    (["--alpha", "{plates}/mattes/a.####.exr"], "is inside the input folder"),
    (["--frames", "1020-1030"], "missing 6 frame(s): 1025-1030"),
    (["--shot-start", "1005"], "shot start 1005 is after the first frame 1001"),
    # One set of plates spelled two ways: every task would fail on the farm.
    (["--alpha", "{plates}/../spelt/a.####.exr", "--foreground", "{plates}/../spelt/a.%04d.exr"],
     "two outputs name the same plates"),
    # A Windows path on a Linux wrangler's machine was made '/cwd/P:\\out\\a.####.exr'.
    pytest.param(["--alpha", "P:\\out\\a.####.exr"], "is a Windows path, and paths are made absolute on this machine",
                 marks=pytest.mark.skipif(os.name == "nt", reason="a Windows path is this machine's own")),
    # A slip in the job folder or the node's command: one line, not a traceback.
    (["--out", "{plates}/plate.1001.exr"], "cannot make the job folder"),
    (["--command", "'/opt/rvm/bin/rvm-bridge"], "cannot be read as a command line (No closing quotation)"),
    (["--command", ""], "--command is empty"),
    # Every task would write its frames over one file: refused when the job is written, not on the farm.
    (["--alpha", "{plates}/../notoken/a.exr"], "has no frame token, so every frame would overwrite one file"),
])
def test_bad_farm_input_is_refused_in_one_line(shot, capsys, words, reason):
    root, pattern, _ = shot
    words = [w.replace("{plates}", os.path.dirname(pattern)) for w in words]
    if "--alpha" not in words:
        words += ["--alpha", str(root / "bad" / "a.####.exr")]
    if "--out" not in words:
        words += ["--out", str(root / "bad_jobs")]
    code, out, err = farm("openjd", pattern, *words, capsys=capsys)
    assert code == 1 and reason in err and len(err.strip().splitlines()) == 1, err


def test_a_pre_roll_reaching_before_the_shot_start_is_clipped_and_said(shot, capsys):
    root, pattern, _ = shot
    code, out, _ = farm("openjd", pattern, "--out", str(root / "clip_jobs"), "--frames", "1005-1024",
                        "--shot-start", "1001", "--alpha", str(root / "clip" / "a.####.exr"), capsys=capsys)
    assert code == 0
    assert "pre-roll 32 reaches before the shot start 1001" in out and "the first chunk pre-rolls 4" in out
    # A pre-roll longer than a chunk reaches the shot start from later chunks too: said, with what it costs.
    code, out, _ = farm("openjd", pattern, "--out", str(root / "clip_jobs"), "--chunk", "4", "--preroll", "100000",
                        "--alpha", str(root / "clip" / "a.####.exr"), capsys=capsys)
    assert code == 0 and ("pre-roll 100000 is longer than a chunk (4): chunks starting within 100000 frames of the "
                          "shot start 1001 pre-roll from it (clipped)") in out


def test_a_failing_task_exits_non_zero_with_a_one_line_reason(shot, capsys):
    root, pattern, _ = shot
    gapped = main(["render", pattern, "--frames", "1001-1004,1006-1008", "--chunk", "--alpha",
                   str(root / "gap" / "a.####.exr")])
    err = capsys.readouterr().err
    assert gapped == 1 and "has a gap" in err and len(err.strip().splitlines()) == 1
    missing = main(["render", pattern, "--frames", "1023-1026", "--chunk", "--alpha", str(root / "gap" / "a.####.exr")])
    err = capsys.readouterr().err
    assert missing == 1 and "missing 2 frame(s): 1025-1026" in err and len(err.strip().splitlines()) == 1
