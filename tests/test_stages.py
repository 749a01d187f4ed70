"""Overlapping stages keep frame order, run ahead in parallel, and surface errors at their frame."""

from __future__ import annotations

import threading
import time

import pytest

from rvm_engine.stages import ordered_map


def test_frames_read_on_several_threads_come_back_in_frame_order():
    threads = set()

    def slow_read(frame):
        threads.add(threading.current_thread().name)
        time.sleep(0.02 if frame % 2 else 0.001)  # odd frames finish last
        return frame * 10

    assert list(ordered_map(slow_read, range(1001, 1013), workers=3, depth=5)) == [f * 10 for f in range(1001, 1013)]
    assert len(threads) > 1


def test_a_bad_frame_raises_at_its_place_after_the_frames_before_it():
    def read(frame):
        if frame == 1003:
            raise ValueError("plate 1003 is corrupt")
        return frame

    got = []
    with pytest.raises(ValueError, match="1003"):
        for frame in ordered_map(read, range(1001, 1010), workers=2, depth=4):
            got.append(frame)
    assert got == [1001, 1002]


def test_stopping_early_cancels_frames_not_yet_started():
    started = []

    def read(frame):
        started.append(frame)
        time.sleep(0.01)
        return frame

    reader = ordered_map(read, range(100), workers=1, depth=3)
    assert next(reader) == 0
    reader.close()
    assert len(started) < 10


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_the_engine_lets_idle_openmp_threads_sleep_unless_the_user_chose(given, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run([sys.executable, "-c", "import os, rvm_engine; print(os.environ['OMP_WAIT_POLICY'])"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
