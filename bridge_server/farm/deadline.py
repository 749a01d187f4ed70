"""Thinkbox Deadline 10: job-info and plugin-info files for the CommandLine plugin.

One Deadline job per contiguous range of the frames (Deadline numbers its tasks from ``Frames=``
in ``ChunkSize`` steps). The plugin runs ``Executable`` with ``Arguments``, in which Deadline
replaces ``<STARTFRAME>`` and ``<ENDFRAME>`` with each task's first and last frame; the task is
``rvm-bridge render ... --chunk``. Submit each pair with ``deadlinecommand JOB.job.info JOB.plugin.info``.
"""

from __future__ import annotations

import os
import subprocess
from typing import Dict, List, Tuple

from .job import FarmJob


def _quoted(word: str) -> str:
    # Deadline hands Arguments to the process as one command line, split by the Windows (MSVC)
    # rules on every platform (.NET does so on Linux too): quote words with spaces, escape quotes
    # and the backslashes before them, as subprocess.list2cmdline does.
    return subprocess.list2cmdline([word])


def info_files(job: FarmJob) -> List[Tuple[str, Dict[str, str], Dict[str, str]]]:
    """``(stem, job_info, plugin_info)`` for each contiguous range of the job."""
    files = []
    arguments = " ".join(_quoted(w) for w in job.command[1:] + job.task_arguments("<STARTFRAME>-<ENDFRAME>"))
    for first, last in job.ranges:
        stem = job.name if len(job.ranges) == 1 else f"{job.name}_{first}-{last}"
        job_info = {"Plugin": "CommandLine", "Name": f"rvm-bridge matte {job.name} {first}-{last}",
                    "BatchName": f"rvm-bridge {job.name}", "Frames": f"{first}-{last}", "ChunkSize": str(job.chunk)}
        plugin_info = {"Executable": job.command[0], "Arguments": arguments}
        files.append((stem, job_info, plugin_info))
    return files


def write(job: FarmJob, folder: str) -> List[str]:
    """Write ``STEM.job.info`` and ``STEM.plugin.info`` per range into ``folder``; returns the paths."""
    written = []
    for stem, job_info, plugin_info in info_files(job):
        for suffix, values in (("job.info", job_info), ("plugin.info", plugin_info)):
            path = os.path.join(folder, f"{stem}.{suffix}")
            with open(path, "w", encoding="utf-8") as out:
                out.writelines(f"{key}={value}\n" for key, value in values.items())
            written.append(path)
    return written


def read_info(path: str) -> Dict[str, str]:
    """A Deadline info file back as ``{key: value}`` (``KEY=VALUE`` lines)."""
    with open(path, encoding="utf-8") as info:
        return dict(line.rstrip("\n").split("=", 1) for line in info if "=" in line)
