"""Render-farm jobs whose tasks are chunk renders: Open Job Description, Deadline, OpenCue.

``job`` makes the job (the task command every farm runs), ``shots`` reads a shot list, and one
module per farm writes its files. The chunk rule itself lives in ``rvm_engine.chunks``.
"""

from rvm_engine.errors import RVMError


class FarmError(RVMError):
    """A farm job that cannot be made as asked (the message names the thing and what to do)."""
