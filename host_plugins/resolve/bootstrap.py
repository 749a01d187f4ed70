"""Find the client unit and pyzmq from inside Resolve: the one place that knows the folder layout.

The scripts are installed as (``install_layout.scripts_folders`` gives the folders per OS;
``rvm-bridge install resolve`` lays it out)::

    Fusion/Scripts/
      Comp/RVM Matte.py            the Fusion page script (and "RVM Matte (Lua).lua")
      Utility/RVM Matte.py         the every-page (Media Pool / timeline) script
      rvm_bridge/                  a package Resolve does not list in its menus
        __init__.py
        client/                    bridge_server/client, copied as it is
        resolve/                   host_plugins/resolve, copied as it is (without scripts/)
        rvm_bridge_paths.py        the installer's path-picker (bridge_server/install/pathpicker.py)
        wheels/<platform>/<abi>/   unpacked pyzmq wheels: linux-x86_64/cp311, windows-x86_64/abi3-cp312, ...
        command.txt                optional: the rvm-bridge command line (for the Lua launcher)

The entry scripts put ``Fusion/Scripts`` on ``sys.path`` and import ``rvm_bridge.resolve``;
``prepare`` then lets the path-picker (the same one the Nuke node uses) put the wheel folder made
for the running Python on ``sys.path``, and ``client_unit`` imports the client
(``rvm_bridge.client``, or ``bridge_server.client`` when run from a checkout).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import List, Optional, Sequence

from .messages import zmq_missing

WHEELS = "wheels"
PATH_PICKER = "rvm_bridge_paths"


def package_folder() -> str:
    """The folder holding this package's parent (``.../rvm_bridge`` when installed)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def path_picker(package: Optional[str] = None) -> Optional[ModuleType]:
    """The path-picker module: ``rvm_bridge_paths.py`` in the installed package folder, else (run
    from a checkout) ``bridge_server/install/pathpicker.py``; None when neither is there. Loaded
    from its file, so two installs in one Python never share it."""
    package = package or package_folder()
    candidates = (os.path.join(package, PATH_PICKER + ".py"),
                  os.path.join(os.path.dirname(package), "bridge_server", "install", "pathpicker.py"))
    for path in candidates:
        if not os.path.isfile(path):
            continue
        spec = importlib.util.spec_from_file_location(PATH_PICKER, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return None


def prepare(package: Optional[str] = None) -> List[str]:
    """Make ``import zmq`` work: a zmq this Python already has is kept, else the path-picker puts
    our unpacked wheel for this Python and platform first on ``sys.path``. Returns what was added
    (nothing when the host has its own zmq, or when no wheel fits: ``client_unit`` then says so)."""
    package = package or package_folder()
    picker = path_picker(package)
    if picker is None:
        return []
    before = set(sys.path)
    picker.add_zmq(os.path.join(package, WHEELS))
    return [folder for folder in sys.path if folder not in before]


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
