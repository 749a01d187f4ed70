"""Plates survive a crash: flushed before they are named, and strays of dead renders cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import OpenImageIO as oiio
import pytest

from rvm_engine import plate_writing, temp_plates
from rvm_engine.clip import ClipSettings
from rvm_engine.errors import PlateError
from rvm_engine.plate_writing import clean_stray_temps, write_plate
from rvm_engine.render import render_sequence
from rvm_engine.sample import write_sample_plates

FIRST = 1001


def _dead_pid() -> int:
    """The pid of a process that ran on this host and has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _temp(folder, base: str, host: str, pid: int) -> str:
    path = os.path.join(folder, f".{base}.{host}.{pid}.0badc0de.tmp.exr")
    with open(path, "wb") as f:
        f.write(b"half a plate")
    return path


@pytest.fixture(scope="module")
def small_shot(tmp_path_factory):
    return write_sample_plates(tmp_path_factory.mktemp("durable"), count=3, width=64, height=64, step=4, first=FIRST)


def test_a_temp_file_of_a_dead_render_is_cleaned_by_the_next_resume_and_a_live_ones_is_kept(small_shot, rvm_model,
                                                                                             tmp_path):
    out = tmp_path / "out"
    settings = ClipSettings(alpha=str(out / "a.####.exr"))
    render_sequence(small_shot, f"{FIRST}-{FIRST + 2}", settings, model=rvm_model, progress=False)
    here = temp_plates.host_name()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _temp(out, f"a.{FIRST + 1}.exr", here, _dead_pid())
        mine = _temp(out, f"a.{FIRST + 1}.exr", here, os.getpid())
        live = _temp(out, f"a.{FIRST + 2}.exr", here, sleeper.pid)
        other_plate = _temp(out, "notes.1001.exr", here, _dead_pid())  # not a plate this render writes
        report = render_sequence(small_shot, f"{FIRST}-{FIRST + 2}", settings, resume=True, model=rvm_model,
                                 progress=False)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert report.stray_temps == 1 and not os.path.exists(dead)
    assert os.path.exists(mine) and os.path.exists(live) and os.path.exists(other_plate)


def test_another_hosts_temp_file_is_removed_only_once_it_is_a_day_old(tmp_path):
    fresh = _temp(tmp_path, f"a.{FIRST}.exr", "render-node-17", 4242)
    old = _temp(tmp_path, f"a.{FIRST + 1}.exr", "render-node-17", 4242)
    unnamed = str(tmp_path / f".a.{FIRST + 2}.exr.1a2b3c4d.tmp.exr")  # the older naming, no host in it
    open(unnamed, "wb").close()
    long_ago = time.time() - temp_plates.FOREIGN_TEMP_AGE_S - 60
    os.utime(old, (long_ago, long_ago))
    os.utime(unnamed, (long_ago, long_ago))
    assert clean_stray_temps([str(tmp_path / "a.####.exr")], range(FIRST, FIRST + 3)) == 2
    assert os.path.exists(fresh) and not os.path.exists(old) and not os.path.exists(unnamed)


def test_a_temp_file_is_named_for_its_host_and_process(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(plate_writing.os, "replace", spy)
    write_plate(tmp_path / "a.1001.exr", np.zeros((4, 4, 1), np.float32), ["A"])
    assert len(seen) == 1
    assert seen[0].startswith(f".a.1001.exr.{temp_plates.host_name()}.{os.getpid()}.") and seen[0].endswith(".tmp.exr")


def test_a_plate_held_open_by_another_program_says_so(tmp_path, monkeypatch):
    target = tmp_path / "fg.1001.exr"
    write_plate(target, np.full((4, 4, 3), 0.5, np.float32), ["R", "G", "B"])

    def held_open(src, dst):  # what Windows and SMB shares answer while a viewer has the file open
        raise PermissionError(13, "The process cannot access the file because it is being used by another process")

    monkeypatch.setattr(plate_writing.os, "replace", held_open)
    with pytest.raises(PlateError) as err:
        write_plate(target, np.zeros((4, 4, 3), np.float32), ["R", "G", "B"])
    text = str(err.value)
    assert str(target) in text and "held open by another program" in text and "close it and render again" in text
    assert os.listdir(tmp_path) == ["fg.1001.exr"]  # no temp file left behind, the old plate intact
    assert np.asarray(oiio.ImageBuf(str(target)).get_pixels(oiio.FLOAT)).max() == 0.5


def test_the_plate_is_flushed_to_disk_before_its_rename_and_the_folder_after_it(tmp_path, monkeypatch):
    """A power cut cannot be simulated in a test, so this checks the calls that make a plate survive
    one: fsync of the temporary file's bytes before it is renamed over the plate, then fsync of the
    folder so the rename itself is on disk."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(temp_plates.os, "fsync", fsync)
    monkeypatch.setattr(plate_writing.os, "replace", replace)
    target = tmp_path / "a.1001.exr"
    write_plate(target, np.ones((4, 4, 1), np.float32), ["A"])
    plate_inode, folder_inode = target.stat().st_ino, tmp_path.stat().st_ino
    assert events == [("fsync", plate_inode), ("replace", plate_inode), ("fsync", folder_inode)]
