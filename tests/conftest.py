"""Shared fixtures: the real MobileNetV3 with provisioned weights and the sample portrait clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .resolve_support import bridge_env, resolve_show  # noqa: F401  (shared by the Resolve script tests)

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def rvm_model():
    from rvm_engine.weights import load_model

    return load_model("mobilenetv3")


@pytest.fixture(scope="session")
def portrait_clip() -> np.ndarray:
    """Eight frames ``[T,H,W,3]`` panning across the astronaut portrait (sRGB 0..1)."""
    from rvm_engine.sample import sample_frames

    return sample_frames(count=8, width=224, height=256, step=10)


@pytest.fixture(scope="session")
def pyzmq_wheels(tmp_path_factory) -> str:
    """A folder of real pyzmq wheels for this platform (CPython 3.7, 3.11, abi3), fetched once."""
    from .nuke_support import fetch_wheels

    return fetch_wheels(str(tmp_path_factory.mktemp("pyzmq-wheels")))
