"""``rvm-bridge install nuke DEST``: lay out the RVMMatte plug-in folder for Nuke.

``DEST`` holds ``init.py`` and ``menu.py`` (Nuke runs them for every folder on ``NUKE_PATH``, or
for a folder added with ``nuke.pluginAddPath`` in ``~/.nuke/init.py``), ``python/`` (the node's
package ``rvm_matte``, the vendored client ``rvm_bridge_client`` and ``rvm_bridge_paths``),
``wheels/<platform>/<abi>/`` (pyzmq for each Nuke's Python) and ``rvm_bridge_install.json``
(what was installed, and the bridge's own Python for the node's "start a local bridge" button).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..client.errors import BadParameter
from . import vendor

PLUGIN_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "host_plugins", "nuke")
INSTALL_RECORD = "rvm_bridge_install.json"

#: Nuke major version -> its Python, from Foundry's release notes (docs/nuke.md says which were
#: confirmed). A version not listed gets the abi3 wheel (any CPython from 3.12 on).
NUKE_PYTHONS: Dict[int, Tuple[int, int]] = {13: (3, 7), 14: (3, 9), 15: (3, 10), 16: (3, 11), 17: (3, 13)}
ABI3_PYTHON = (3, 12)


def python_for(nuke: int) -> Tuple[int, int]:
    """The Python a Nuke major version runs; unknown versions get the abi3 wheel's floor, 3.12."""
    if nuke < 13:
        raise BadParameter(f"Nuke {nuke} runs Python 2 or 3.7 only from 13 on: the bridge needs Nuke 13 or later")
    return NUKE_PYTHONS.get(nuke, ABI3_PYTHON)


@dataclass
class NukeInstall:
    dest: str
    nukes: List[int]
    platforms: List[str]
    report: vendor.VendorReport = field(default_factory=vendor.VendorReport)

    def lines(self) -> List[str]:
        init_line = f"nuke.pluginAddPath({self.dest!r})"
        return [f"installed RVMMatte for Nuke {', '.join(map(str, self.nukes))} into {self.dest}",
                *self.report.lines(),
                f"add {self.dest} to NUKE_PATH, or put this line in ~/.nuke/init.py: {init_line}"]


def install_nuke(dest: str, nukes: Sequence[int], platforms: Sequence[str], wheel_source: Optional[str] = None,
                 bridge_python: Optional[str] = sys.executable) -> NukeInstall:
    """Build the plug-in folder in ``dest`` for Nuke major versions ``nukes`` on ``platforms``
    (``linux-x86_64``, ``windows-x86_64``, ``macos-arm64``...). ``wheel_source`` is a folder of
    pyzmq wheels to use instead of PyPI. Re-running replaces what an earlier install put there and
    leaves other files alone. Raises BadParameter, vendor.WheelError."""
    if not nukes:
        raise BadParameter("name at least one Nuke version: --nuke 13 14 15 16 17")
    if wheel_source and not os.path.isdir(wheel_source):
        raise BadParameter(f"--wheels {wheel_source} is not a folder")
    dest = os.path.abspath(dest)
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise BadParameter(f"{dest} is a file: name a folder for the plug-in (it is created)")
    _check_startup_files(dest)
    try:
        return _install(dest, nukes, platforms, wheel_source, bridge_python)
    except OSError as error:
        raise BadParameter(f"cannot write the plug-in folder {dest}: {error}") from error


def _check_startup_files(dest: str) -> None:
    """Refuse to replace an ``init.py``/``menu.py`` that an earlier install did not write (a
    ``~/.nuke`` folder, a studio's own plug-in folder): Nuke would lose its start-up code."""
    for name in ("init.py", "menu.py"):
        path = os.path.join(dest, name)
        if not os.path.exists(path):
            continue
        with open(os.path.join(PLUGIN_SOURCE, name), encoding="utf-8") as ours:
            header = ours.readline()
        try:
            with open(path, encoding="utf-8", errors="replace") as theirs:
                first = theirs.readline()
        except OSError as error:
            raise BadParameter(f"cannot read {path}: {error}") from error
        if first != header:
            raise BadParameter(f"{path} is not RVMMatte's: installing would replace it. Install into a folder of its "
                               f"own (e.g. {os.path.join(dest, 'rvm_matte')}) and add that folder with "
                               "nuke.pluginAddPath")


def _install(dest: str, nukes: Sequence[int], platforms: Sequence[str], wheel_source: Optional[str],
             bridge_python: Optional[str]) -> NukeInstall:
    install = NukeInstall(dest, sorted(set(nukes)), vendor.check_platforms(platforms))
    pythons = [python_for(nuke) for nuke in install.nukes]
    python_dir = os.path.join(dest, "python")
    os.makedirs(python_dir, exist_ok=True)
    install.report = vendor.vendor_pyzmq(os.path.join(dest, "wheels"), pythons, install.platforms, wheel_source)
    vendor.copy_client(python_dir)
    vendor.copy_path_picker(python_dir)
    package = os.path.join(python_dir, "rvm_matte")
    if os.path.exists(package):
        shutil.rmtree(package)
    shutil.copytree(os.path.join(PLUGIN_SOURCE, "rvm_matte"), package,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("init.py", "menu.py"):
        shutil.copyfile(os.path.join(PLUGIN_SOURCE, name), os.path.join(dest, name))
    record = {"nuke": install.nukes, "pythons": ["%d.%d" % python for python in pythons],
              "platforms": install.platforms, "wheels": [w.wheel for w in install.report.wheels],
              "bridge_python": bridge_python if bridge_python and os.path.exists(bridge_python) else None}
    with open(os.path.join(dest, INSTALL_RECORD), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
    return install
