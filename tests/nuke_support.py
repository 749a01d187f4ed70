"""Shared by the Nuke tests: real pyzmq wheels fetched once per session, and the installed
plug-in folder made from them by the real installer; a real interpreter of a given version."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from bridge_server.install.pathpicker import platform_name
from bridge_server.install.vendor import PLATFORMS

# Three wheels keep the folder small: CPython 3.7 (pyzmq 26.2.1, the last for 3.7), 3.11, and the
# cp312-abi3 wheel that serves 3.12 and later.
WHEEL_PYTHONS = ("3.7", "3.11", "3.13")
PYENV = os.path.expanduser("~/.pyenv/versions")


def real_python(version: str):
    """A CPython ``version`` interpreter on this machine (pyenv, Debian's, uv's), or None."""
    candidates = [shutil.which(f"python{version}")]
    if os.path.isdir(PYENV):
        candidates += [os.path.join(PYENV, name, "bin", "python") for name in sorted(os.listdir(PYENV))
                       if name.startswith(version + ".")]
    for candidate in filter(None, candidates):
        try:
            done = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip() == version:
            return candidate
    return None


def fetch_wheels(folder: str) -> str:
    """Download the test wheels for this machine's platform into ``folder`` with pip."""
    from bridge_server.install.vendor import parse_python, pyzmq_requirement

    os.makedirs(folder, exist_ok=True)
    for python in WHEEL_PYTHONS:
        command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
                   "--only-binary", ":all:", "--python-version", python, "--implementation", "cp", "-d", folder]
        for tag in PLATFORMS[platform_name()]:
            command += ["--platform", tag]
        done = subprocess.run(command + [pyzmq_requirement(parse_python(python))], capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            pytest.fail(f"pip could not download the pyzmq wheel for Python {python} (PyPI is needed once per "
                        f"session): {done.stderr[-500:]}")
    return folder
