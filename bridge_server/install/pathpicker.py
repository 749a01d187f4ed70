"""Put the right vendored ``pyzmq`` on ``sys.path`` for the running interpreter.

Copied as it is into host plug-in folders (as ``rvm_bridge_paths.py``) and imported by a host's
start-up code (Nuke's ``init.py``, a Resolve script) before anything imports ``zmq``: standard
library only, Python 3.7+. The installer unpacks wheels as ``WHEELS/<platform>/<abi>/`` where
``<platform>`` is ``linux-x86_64``, ``windows-x86_64``, ``macos-arm64``... and ``<abi>`` is
``cp37`` (one CPython minor version) or ``abi3-cp312`` (the stable ABI, any CPython from 3.12 on).
A ``zmq`` the host can already import is preferred to ours.
"""

import os
import platform
import sys

_MACHINES = {"amd64": "x86_64", "x86_64": "x86_64", "x64": "x86_64", "arm64": "arm64", "aarch64": "aarch64"}


def platform_name(system=None, machine=None):
    """This machine as the installer names platforms: ``linux-x86_64``, ``windows-x86_64``, ``macos-arm64``."""
    system = system or sys.platform
    machine = _MACHINES.get((machine or platform.machine()).lower(), (machine or platform.machine()).lower())
    if system.startswith("linux"):
        return "linux-" + machine
    if system.startswith("win"):
        return "windows-" + machine
    if system == "darwin":
        return "macos-" + ("arm64" if machine in ("arm64", "aarch64") else machine)
    return system + "-" + machine


def abi_folder(wheels, version=None, system=None, machine=None):
    """The unpacked wheel folder for a Python ``version`` ((major, minor); default: the running one)
    on this platform, or None. An exact ``cpXY`` folder wins; else the ``abi3-cpXY`` folder with
    the highest ``XY`` not above the version."""
    major, minor = tuple(version or sys.version_info[:2])
    base = os.path.join(wheels, platform_name(system, machine))
    try:
        names = os.listdir(base)
    except OSError:
        return None
    exact = "cp%d%d" % (major, minor)
    if exact in names:
        return os.path.join(base, exact)
    best = None
    for name in names:
        tail = name[len("abi3-cp%d" % major):]
        if name.startswith("abi3-cp%d" % major) and tail.isdigit():  # not a TD's "abi3-cp312.old" copy
            floor = int(tail)
            if floor <= minor and (best is None or floor > best[0]):
                best = (floor, name)
    return os.path.join(base, best[1]) if best else None


def add_zmq(wheels):
    """Make ``import zmq`` work: keep a ``zmq`` the host already has, else put our unpacked wheel
    for this interpreter first on ``sys.path``. Returns where ``zmq`` comes from ("host", a
    folder) or "" when there is none for this interpreter (the node then says so)."""
    try:
        import zmq  # noqa: F401  (a host that ships or installed its own is preferred)
        return "host"
    except Exception:  # noqa: BLE001  (missing, or a studio's zmq that cannot load its libzmq: use ours)
        for name in [n for n in sys.modules if n == "zmq" or n.startswith("zmq.")]:
            del sys.modules[name]
    folder = abi_folder(wheels)
    if folder is None:
        return ""
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return folder
