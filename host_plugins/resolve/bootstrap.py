"""Find the client unit and pyzmq from inside Resolve: the one place that knows the folder layout.

The scripts are installed as (``install_layout.scripts_folders`` gives the folders per OS)::

    Fusion/Scripts/
      Comp/RVM Matte.py            the Fusion page script (and "RVM Matte (Lua).lua")
      Utility/RVM Matte.py         the every-page (Media Pool / timeline) script
      rvm_bridge/                  a package Resolve does not list in its menus
        __init__.py
        client/                    bridge_server/client, copied as it is
        resolve/                   host_plugins/resolve, copied as it is (without scripts/)
        wheels/<tag>/              unpacked pyzmq wheels, <tag> = cp311-win_amd64, cp310-linux_x86_64, ...
        command.txt                optional: the rvm-bridge command line (for the Lua launcher)

The entry scripts put ``Fusion/Scripts`` on ``sys.path`` and import ``rvm_bridge.resolve``;
``prepare`` then adds the wheel folder made for the running Python, and ``client_unit`` imports
the client (``rvm_bridge.client``, or ``bridge_server.client`` when run from a checkout).
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
from types import ModuleType
from typing import List, Optional, Sequence, Tuple

from .messages import zmq_missing

WHEELS = "wheels"


def package_folder() -> str:
    """The folder holding this package's parent (``.../rvm_bridge`` when installed)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_tag(version: Optional[Tuple[int, int]] = None) -> str:
    major, minor = version or (sys.version_info[0], sys.version_info[1])
    return f"cp{major}{minor}"


def platform_tag(platform: Optional[str] = None) -> str:
    """``sysconfig.get_platform()`` as wheel tags spell it: ``win-amd64`` -> ``win_amd64``."""
    return (platform or sysconfig.get_platform()).replace("-", "_").replace(".", "_")


def wheel_folder(package: str, version: Optional[Tuple[int, int]] = None, platform: Optional[str] = None
                 ) -> Optional[str]:
    """The unpacked wheel folder under ``package/wheels`` for this Python: ``<cpXY>-<platform>``
    exactly, else the one ``<cpXY>-*`` folder whose platform part ends like ours (macOS wheels
    name the oldest macOS they run on). None when there is none."""
    root = os.path.join(package, WHEELS)
    if not os.path.isdir(root):
        return None
    tag, plat = python_tag(version), platform_tag(platform)
    names = sorted(os.listdir(root))
    if f"{tag}-{plat}" in names:
        return os.path.join(root, f"{tag}-{plat}")
    machine = plat.rsplit("_", 1)[-1]
    family = plat.split("_", 1)[0]
    for name in names:
        if name.startswith(tag + "-") and name.split("-", 1)[1].startswith(family) and name.endswith(machine):
            return os.path.join(root, name)
    return None


def prepare(package: Optional[str] = None) -> List[str]:
    """Put this Python's wheel folder first on ``sys.path``; returns what was added."""
    folder = wheel_folder(package or package_folder())
    if folder and folder not in sys.path:
        sys.path.insert(0, folder)
        return [folder]
    return []


def client_unit(names: Sequence[str] = ()) -> ModuleType:
    """The client package (BridgeClient, render_through_bridge, errors ...).

    Raises ZmqMissing (with the install command) when pyzmq cannot be imported, and ImportError
    when no client unit is installed at all.
    """
    here = __package__ or ""
    candidates = list(names) or [here.rsplit(".", 1)[0] + ".client", "bridge_server.client"]
    missing: Optional[ImportError] = None
    for name in candidates:
        try:
            return importlib.import_module(name)
        except ImportError as error:
            if (getattr(error, "name", None) or "").split(".")[0] == "zmq" or "zmq" in str(error):
                raise zmq_missing(sys.executable or "python", str(error)) from error
            missing = missing or error
    raise ImportError(f"no rvm-bridge client unit found (tried {', '.join(candidates)}); run "
                      f"`rvm-bridge install resolve`: {missing}")
