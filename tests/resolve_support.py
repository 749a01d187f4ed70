"""Helpers for the Resolve script tests: the scripts installed in the folder layout
``bootstrap`` expects, run the way Resolve runs a Workspace > Scripts entry (the file executed
with ``fusion``, ``comp``, ``bmd`` and ``resolve`` as globals), and a small movie of the shot."""

from __future__ import annotations

import os
import runpy
import sys
from fractions import Fraction
from typing import Any, Dict, List

import numpy as np
import pytest

from .test_server_support import FIRST, reference_render, shot_frames, start_bridge, write_shot

COUNT = 8
LAST = FIRST + COUNT - 1
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(REPO, "host_plugins", "resolve", "scripts")


def install_scripts(folder: str) -> str:
    """The scripts installed in ``folder`` (a stand-in ``Fusion/Scripts``) by the real installer
    (``rvm-bridge install resolve --dest folder --no-pyzmq``): the scripts run in this process,
    whose own pyzmq the path-picker prefers anyway (``test_resolve_install`` covers the vendored one)."""
    from bridge_server.install.resolve import install_resolve

    install_resolve(folder, with_pyzmq=False)
    return folder


def forget_installed() -> None:
    for name in [name for name in sys.modules if name == "rvm_bridge" or name.startswith("rvm_bridge.")]:
        del sys.modules[name]


def run_script(path: str, **scope: Any) -> int:
    """Run an entry script as Resolve does (its folder's parent goes on sys.path inside it)."""
    before = list(sys.path)
    forget_installed()
    try:
        done = runpy.run_path(path, init_globals=scope, run_name="__main__")
    finally:
        sys.path[:] = before
        forget_installed()
    return int(done["RVM_MATTE_STATUS"])


def write_movie(path: str, frames: np.ndarray) -> str:
    """``frames`` (sRGB 0..1, [T,H,W,3]) as an H.264 (or MPEG-4) movie at 24 fps."""
    from rvm_engine.video_io import VideoWriter

    os.makedirs(os.path.dirname(path), exist_ok=True)
    writer = VideoWriter(path, size=(frames.shape[2], frames.shape[1]), frame_rate=Fraction(24), bit_rate=8_000_000)
    for frame in frames:
        writer.write(np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8))
    writer.close()
    return path


def movie_frames(path: str) -> List[np.ndarray]:
    """The movie decoded, float RGB 0..1 (what a MediaIn shows, frame by frame)."""
    import av

    with av.open(path) as container:
        return [frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0 for frame in container.decode(video=0)]


def scope_for(fusion: Any = None, comp: Any = None, bmd: Any = None, resolve: Any = None) -> Dict[str, Any]:
    scope = {"fusion": fusion, "fu": fusion, "comp": comp, "bmd": bmd}
    if resolve is not None:
        scope["resolve"] = resolve
    return scope


@pytest.fixture(scope="session")
def resolve_show(tmp_path_factory):
    """A show folder a real bridge serves (one for every Resolve test): the shot as EXR plates,
    their batch render (alpha and foreground), a movie of the shot, and the scripts installed."""
    root = tmp_path_factory.mktemp("show")
    pattern = write_shot(str(root / "sh010"), count=COUNT)
    reference = reference_render(pattern, list(range(FIRST, LAST + 1)), str(root / "reference"), foreground=True)
    movie = write_movie(str(root / "sh020" / "interview.mp4"), shot_frames(6))
    server = start_bridge(str(root))
    scripts = install_scripts(str(tmp_path_factory.mktemp("Fusion") / "Scripts"))
    yield {"root": str(root), "pattern": pattern, "reference": reference, "movie": movie, "server": server,
           "scripts": scripts, "comp_script": os.path.join(scripts, "Comp", "RVM Matte.py"),
           "utility_script": os.path.join(scripts, "Utility", "RVM Matte.py"),
           "ratios_script": os.path.join(scripts, "Comp", "RVM Try Ratios.py"),
           "lua_launcher": os.path.join(scripts, "Comp", "RVM Matte (Lua).lua")}
    assert server.stop() == 0, server.log_tail()


@pytest.fixture
def bridge_env(resolve_show, monkeypatch):
    """The shared show, with the scripts' environment pointing at its bridge."""
    monkeypatch.setenv("RVM_BRIDGE_ADDRESS", resolve_show["server"].address)
    monkeypatch.setenv("RVM_BRIDGE_TIMEOUT", "2")
    monkeypatch.delenv("RVM_BRIDGE_PATH_MAP", raising=False)
    return resolve_show
