# What Nuke 17.1 adds to the nuke module that the types-nuke stubs (generated from Nuke 13.2) lack.
# A stub only: the node's code reads these through typing.cast, never imports this at run time.
# Traced to https://learn.foundry.com/nuke/developers/17.1/pythondevguide/_autosummary/nuke.ProgressTask.html
# ("class nuke.ProgressTask, Bases: pybind11_object ... Parameters: name, maximum (default 100),
# flags (default kUserCanCancel | kShowTimeToGo)"; attributes kUserCanCancel, kShowTimeToGo ...).
from typing import Any, Protocol

class ProgressTask171(Protocol):
    kDefaultFlags: int
    kUserCanCancel: int
    kShowTimeToGo: int
    def __call__(self, name: str, maximum: int = ..., flags: int = ...) -> Any: ...
