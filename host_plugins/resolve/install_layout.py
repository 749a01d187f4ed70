"""Where Resolve looks for Workspace > Scripts, per OS, per user or for all users.

From Blackmagic's scripting README (Developer/Scripting/README.txt, "Script locations"): the
per-user Windows folder carries a ``Support`` segment the all-users one lacks. Resolve lists
``Comp`` scripts on the Fusion page and ``Utility`` scripts on every page. A pure function, so
``rvm-bridge install resolve`` and the tests can ask for any OS from any OS.
"""

from __future__ import annotations

import ntpath
import posixpath
from typing import Dict, Mapping, Optional

MENUS = ("Comp", "Utility")
PACKAGE = "rvm_bridge"  # the vendored client, this package and pyzmq, beside the menu folders


def scripts_root(os_name: str, all_users: bool = False, environ: Optional[Mapping[str, str]] = None,
                 home: str = "~") -> str:
    """The ``Fusion/Scripts`` folder of DaVinci Resolve for ``os_name`` (``linux``, ``windows``
    or ``macos``; ``sys.platform`` spellings too). ``environ`` supplies ``APPDATA`` and
    ``PROGRAMDATA`` on Windows (defaults when absent). Raises ValueError for another OS."""
    env = environ or {}
    name = _os(os_name)
    if name == "windows":
        if all_users:
            base = env.get("PROGRAMDATA") or "C:\\ProgramData"
            return ntpath.join(base, "Blackmagic Design", "DaVinci Resolve", "Fusion", "Scripts")
        base = env.get("APPDATA") or ntpath.join(home, "AppData", "Roaming")
        return ntpath.join(base, "Blackmagic Design", "DaVinci Resolve", "Support", "Fusion", "Scripts")
    if name == "macos":
        base = "/Library" if all_users else posixpath.join(home, "Library")
        return posixpath.join(base, "Application Support", "Blackmagic Design", "DaVinci Resolve", "Fusion",
                              "Scripts")
    if all_users:
        return "/opt/resolve/Fusion/Scripts"
    return posixpath.join(home, ".local", "share", "DaVinciResolve", "Fusion", "Scripts")


def scripts_folders(os_name: str, all_users: bool = False, environ: Optional[Mapping[str, str]] = None,
                    home: str = "~") -> Dict[str, str]:
    """``{"Comp": ..., "Utility": ..., "rvm_bridge": ...}``: the two menu folders the scripts go
    into and the package folder beside them (see ``bootstrap``)."""
    root = scripts_root(os_name, all_users, environ, home)
    join = ntpath.join if _os(os_name) == "windows" else posixpath.join
    folders = {menu: join(root, menu) for menu in MENUS}
    folders[PACKAGE] = join(root, PACKAGE)
    return folders


def _os(os_name: str) -> str:
    name = os_name.lower()
    if name in ("windows", "win32", "nt", "cygwin"):
        return "windows"
    if name in ("macos", "darwin", "mac", "osx"):
        return "macos"
    if name.startswith("linux"):
        return "linux"
    raise ValueError(f"DaVinci Resolve runs on Linux, Windows and macOS, not {os_name!r}")
