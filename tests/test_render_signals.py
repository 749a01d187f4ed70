"""Ctrl-C on a real ``rvm-bridge render``: exit 130 with one line, only whole plates, resume finishes.

A compositor starts a 40-frame render from a shell, changes their mind once the first plates have
landed and presses Ctrl-C (SIGINT to the process). The render stops after the plates in flight,
says so in one line and exits 130, as a shell expects of an interrupted command; the plates left
on disk are whole, and ``--resume`` carries on from where it stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from bridge_server.cli import main
from rvm_engine.plate_writing import write_plate
from rvm_engine.sample import sample_frames
from tests.conftest import REPO

FIRST, FRAMES, SIZE = 1001, 40, 256
# The installed ``rvm-bridge`` command is ``sys.exit(bridge_server.cli:main())``. SIGINT gets
# Python's own KeyboardInterrupt handler explicitly: a test run started with SIGINT ignored (nohup,
# a background job in a script) would pass SIG_IGN on, and Python then installs no handler at all.
RVM_BRIDGE = [
    sys.executable,
    "-c",
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from bridge_server.cli import main; sys.exit(main())",
]
PATIENCE = 300  # seconds; generous for a loaded two-core machine, never a sleep we rely on


@pytest.fixture(scope="module")
def long_shot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Forty 256x256 scene-linear half EXRs plate.1001-1040.exr of the portrait, panning right."""
    folder = tmp_path_factory.mktemp("long_shot")
    frames = sample_frames(count=FRAMES, width=SIZE, height=SIZE, step=4)
    linear = np.where(frames <= 0.04045, frames / 12.92, ((frames + 0.055) / 1.055) ** 2.4).astype(np.float32)
    for i, plate in enumerate(linear):
        write_plate(folder / f"plate.{FIRST + i}.exr", plate, ["R", "G", "B"], pixel_type="half")
    return folder


def _whole(path: Path) -> tuple[int, int, tuple[str, ...]]:
    """(width, height, channels) of a plate that OpenImageIO reads to the last pixel; fails otherwise."""
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, f"{path.name} does not open: {oiio.geterror()}"
    spec = inp.spec()
    pixels = inp.read_image(oiio.FLOAT)
    inp.close()
    assert pixels is not None and np.isfinite(pixels).all(), f"{path.name} does not read whole"
    return spec.width, spec.height, tuple(spec.channelnames)


def _writing(out: Path) -> bool:
    """Whether a plate is being written in ``out`` now (a hidden ``.name.token.tmp.exr`` exists)."""
    return any(name.startswith(".") and ".tmp" in name for name in os.listdir(out))


def _plates(first: int, count: int) -> list[str]:
    return sorted(f"{kind}.{frame}.exr" for frame in range(first, first + count) for kind in ("a", "fg"))


def test_ctrl_c_stops_a_render_with_exit_130_leaving_whole_plates_and_resume_finishes_it(
    long_shot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "out"
    args = ["render", str(long_shot / "plate.####.exr"), "--alpha", str(out / "a.####.exr"),
            "--foreground", str(out / "fg.####.exr"), "--no-progress"]
    render = subprocess.Popen([*RVM_BRIDGE, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Ctrl-C once the first foreground plate has landed (plates appear by atomic rename) ...
        deadline = time.monotonic() + PATIENCE
        while not list(out.glob("fg.*.exr")) and render.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert render.poll() is None, f"the render ended before any plate was written: {render.communicate()}"
        assert list(out.glob("fg.*.exr")), "no plate was written within the patience allowed"
        # ... aimed, where we can see it, at a moment when a later plate is being written (its
        # hidden temporary file exists): the plates in flight must still land whole.
        deadline = time.monotonic() + 30
        while not _writing(out) and render.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        render.send_signal(signal.SIGINT)
        stdout, stderr = render.communicate(timeout=PATIENCE)
    finally:
        if render.poll() is None:
            render.kill()
            render.communicate()

    assert render.returncode == 130, (render.returncode, stderr)
    assert "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    assert stderr.startswith("rvm-bridge render: cancelled") and "--resume" in stderr, stderr
    assert stdout == ""  # no "wrote N frames" summary for a render that did not finish

    # What is on disk: alpha and foreground for a run of frames from the first (the plates in
    # flight were finished), each whole, and nothing else: no hidden temporary file.
    leftovers = [name for name in os.listdir(out) if name.startswith(".")]
    assert leftovers == [], f"temporary files left behind: {leftovers}"
    done = len(list(out.glob("fg.*.exr")))
    assert 1 <= done < FRAMES, f"{done} frames: the Ctrl-C did not land mid-render; make the shot longer"
    assert sorted(p.name for p in out.iterdir()) == _plates(FIRST, done)
    for plate in out.iterdir():
        channels = ("A",) if plate.name.startswith("a.") else ("R", "G", "B")
        assert _whole(plate) == (SIZE, SIZE, channels), plate.name

    assert main([*args, "--resume"]) == 0
    said = capsys.readouterr().out
    assert f"wrote {FRAMES - done} frames" in said and f"resumed after {done} complete frames" in said, said
    assert sorted(p.name for p in out.iterdir()) == _plates(FIRST, FRAMES)
    for frame in (FIRST + done, FIRST + FRAMES - 1):  # the first and last resumed frames
        assert _whole(out / f"a.{frame}.exr") == (SIZE, SIZE, ("A",))
        assert _whole(out / f"fg.{frame}.exr") == (SIZE, SIZE, ("R", "G", "B"))
