"""Reach the vendored bridge client, or say in the artist's words why it cannot be reached.

The installed plug-in carries the client unit as ``rvm_bridge_client`` and pyzmq unpacked per
Python (``rvm_bridge_paths`` put the right one on ``sys.path`` at start-up). Run from the
repository (the tests), the client is ``bridge_server.client``.
"""

import importlib
import os
import sys
from typing import Any, Tuple

INSTALL_HINT = "rvm-bridge install nuke {folder} --nuke {major}"


def plugin_folder() -> str:
    """The plug-in folder (the one holding init.py), from this package's place in it."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_client() -> Tuple[Any, str]:
    """``(client module, "")``, or ``(None, message)`` when pyzmq is missing for this Python."""
    try:
        import zmq  # noqa: F401
    except ImportError as error:
        return None, missing_zmq(str(error))
    for name in ("rvm_bridge_client", "bridge_server.client"):
        try:
            return importlib.import_module(name), ""
        except ImportError:
            continue
    return None, ("RVMMatte cannot find its bridge client (rvm_bridge_client) next to it: re-install the "
                  "plug-in with " + INSTALL_HINT.format(folder=plugin_folder(), major=_nuke_major()))


def missing_zmq(detail: str = "") -> str:
    version = "%d.%d" % sys.version_info[:2]
    return ("RVMMatte needs pyzmq for this Nuke's Python {} and none was found{}. Install the plug-in for "
            "this Nuke version: {}".format(version, f" ({detail})" if detail else "",
                                       INSTALL_HINT.format(folder=plugin_folder(), major=_nuke_major())))


def _nuke_major() -> str:
    try:
        import nuke

        return str(nuke.NUKE_VERSION_MAJOR)
    except (ImportError, AttributeError):
        return "<major>"
