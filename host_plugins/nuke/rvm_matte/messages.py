"""Bridge errors said in the artist's words: what happened and the one thing to do about it."""

import json
import os
from typing import Any, Optional, Sequence

from .bridge import plugin_folder

INSTALL_RECORD = "rvm_bridge_install.json"


def bridge_python() -> Optional[str]:
    """The bridge's own Python when the bridge is installed on this machine (the installer
    recorded it), else None: the "start a local bridge" button needs it."""
    try:
        with open(os.path.join(plugin_folder(), INSTALL_RECORD), encoding="utf-8") as handle:
            python = json.load(handle).get("bridge_python")
    except (OSError, ValueError, AttributeError):
        return None
    return python if isinstance(python, str) and os.path.exists(python) else None


def explain(error: Exception, client: Any, address: str, folder: str, roots: Sequence[str] = ()) -> str:
    """The artist's message for a bridge ``error`` (``client``: the client module)."""
    errors = client.errors
    if isinstance(error, errors.BridgeTimeout):
        start = "rvm-bridge serve --address {} --root {}".format(address, folder or "<folder holding your plates>")
        text = (f"No bridge answers at {address}. Start one on the machine with the GPU:\n    {start}")
        if bridge_python():
            text += "\nor press \"start a local bridge\" to start one on this machine."
        return text
    if isinstance(error, errors.VersionMismatch):
        return (f"RVMMatte and the bridge at {address} speak different protocol versions ({error.message}). Install the plug-in "
                f"from the same rvm-bridge as the server: rvm-bridge install nuke {plugin_folder()}")
    if isinstance(error, errors.PathOutsideRoots):
        where = ", ".join(roots) if roots else "(the server did not say)"
        return (f"The bridge at {address} may only read and write under: {where}.\n{error.message}\nSet \"plates folder\" under one of "
                "them, or start the bridge with --root covering your plates.")
    if isinstance(error, errors.PathNotMapped):
        return (f"The bridge at {address} runs on another OS and cannot place this path: {error.message}\nAdd a path mapping "
                "rule (RVM_BRIDGE_PATH_MAP=\"P:\\shows=/mnt/shows\") here or --path-map on the server.")
    if isinstance(error, errors.PlateError):
        return f"The bridge cannot read or write a plate: {error.message}"
    if isinstance(error, (errors.ServerBusy, errors.TooManyClips)):
        return (f"The bridge at {address} is busy with other clips ({error.message}). Render again when they finish, or start "
                "another bridge and point \"bridge\" at it.")
    if isinstance(error, errors.AccessRefused):
        return f"The bridge at {address} refused this machine's keys: {error.message}"
    if isinstance(error, errors.BridgeError):
        return f"The bridge at {address} could not make the matte: {error.message}"
    return f"RVMMatte failed: {error}"
