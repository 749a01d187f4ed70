"""Progress the Nuke way: a ``nuke.ProgressTask`` with Cancel in the GUI, printed lines under
``nuke -t`` / ``nuke -x`` (no GUI: a ProgressTask there shows nothing and is never cancelled).

Nuke 13-17.0: ``ProgressTask(name)``, ``setProgress`` takes a percentage. Nuke 17.1's pybind11
API: ``ProgressTask(name, maximum, flags)``; ``setProgress`` counts up to ``maximum``
(https://learn.foundry.com/nuke/developers/17.1/pythondevguide/_autosummary/nuke.ProgressTask.html).
"""

import sys
from typing import TYPE_CHECKING, Any, Optional, cast

import nuke

if TYPE_CHECKING:  # a local stub (_nuke171.pyi): what 17.1 adds that types-nuke (13.2) lacks
    from ._nuke171 import ProgressTask171

def counts_to_maximum() -> bool:
    """True for Nuke 17.1 and later (pybind11 ProgressTask with a ``maximum``)."""
    version = (int(getattr(nuke, "NUKE_VERSION_MAJOR", 0)), int(getattr(nuke, "NUKE_VERSION_MINOR", 0)))
    return version >= (17, 1)


class Progress:
    """One phase of work (``total`` steps): a cancellable task in the GUI, lines on stdout otherwise."""

    def __init__(self, title: str, total: int) -> None:
        self.title = title
        self.total = max(1, total)
        self.task: Optional[Any] = None
        if nuke.GUI:
            if counts_to_maximum():
                task_type = cast("ProgressTask171", nuke.ProgressTask)
                flags = task_type.kUserCanCancel | task_type.kShowTimeToGo
                self.task = task_type(title, self.total, flags)
            else:
                self.task = nuke.ProgressTask(title)

    def step(self, done: int, message: str) -> bool:
        """Show ``done`` of ``total`` with ``message``; True when the artist pressed Cancel."""
        if self.task is None:
            sys.stdout.write("RVMMatte: %s: %s (%d/%d)\n" % (self.title, message, done, self.total))
            sys.stdout.flush()
            return False
        self.task.setMessage(message)
        self.task.setProgress(done if counts_to_maximum() else int(100 * done / self.total))
        return bool(self.task.isCancelled())

    def cancelled(self) -> bool:
        return bool(self.task is not None and self.task.isCancelled())

    def close(self) -> None:
        """Nuke closes a ProgressTask's window when the object goes away."""
        self.task = None
