"""OpenCue: the job as a pyoutline outline, serialised to the Cuebot's job XML.

One Shell layer per contiguous range, with the range and the chunk size; the Cuebot replaces
``#FRAME_START#`` and ``#FRAME_END#`` in the command with each frame chunk's ends. Older Cuebots
hand the last chunk an end past the layer's range, so the task gets ``--within FIRST-LAST`` and
renders only frames inside it. Writing the XML needs no Cuebot; submitting needs its address.
"""

from __future__ import annotations

import os
import shlex
from typing import Any, List

from .job import FarmJob


def outline(job: FarmJob, show: str = "rvm") -> Any:
    """The pyoutline ``Outline`` of the job."""
    from outline import Outline
    from outline.modules.shell import Shell

    ol = Outline(f"rvm-bridge_matte_{job.name}", shot=job.name, show=show)
    for first, last in job.ranges:
        words = job.command + job.task_arguments("#FRAME_START#-#FRAME_END#", within=f"{first}-{last}")
        ol.add_layer(Shell(f"matte_{first}_{last}", command=[shlex.quote(w) for w in words],
                           range=f"{first}-{last}", chunk=job.chunk))
    return ol


def job_xml(job: FarmJob, show: str = "rvm") -> str:
    """The job specification a Cuebot takes, without the pycuerun wrapper (the layers run the command)."""
    from outline.backend import cue
    from outline.cuerun import OutlineLauncher

    return cue.serialize_simple(OutlineLauncher(outline(job, show)))


def write(job: FarmJob, folder: str, show: str = "rvm") -> List[str]:
    path = os.path.join(folder, f"{job.name}.cue.xml")
    with open(path, "w", encoding="utf-8") as out:
        out.write(job_xml(job, show))
    return [path]


def submit(job: FarmJob, cuebot: str, show: str = "rvm") -> Any:
    """Launch the outline on the Cuebot at ``cuebot`` (host or host:port); returns what pyoutline
    returns. Raises FarmError when the Cuebot cannot be reached or refuses the job."""
    from opencue.exception import CueException
    from outline import cuerun

    from . import FarmError

    os.environ["CUEBOT_HOSTS"] = cuebot
    try:
        return cuerun.launch(outline(job, show), use_pycuerun=False)
    except CueException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FarmError(f"{job.name}: the Cuebot at {cuebot} did not take the job ({first}); its XML is written "
                        "beside the other job files") from None
