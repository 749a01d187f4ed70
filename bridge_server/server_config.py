"""How a bridge serves: ``ServerConfig``, the settings ``rvm-bridge serve`` gives a server, and
their checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from rvm_engine.stages import pool_sizes

from .client.errors import BadParameter
from .client.pathmap import PathMap
from .client.protocol import DEFAULT_ADDRESS, Limits

_READERS, _WRITERS = pool_sizes()
MAX_WAIT_S = 86400.0
# Many clips on one GPU: at most this many clips' frames in one network call. On the CPU batching
# is off by default: a batch ran no faster per frame there (docs/server.md, "Many clips on one GPU").
BATCH_MAX = 8


@dataclass
class ServerConfig:
    """How a bridge serves; sizes are bytes, times seconds, frame counts inclusive."""

    roots: Sequence[str]
    address: str = DEFAULT_ADDRESS
    keys_dir: Optional[str] = None
    device: str = "cpu"
    workers: int = 2
    readers: int = _READERS
    writers: int = _WRITERS
    memory_budget: int = 4 * 1024 ** 3
    max_clips: int = 32
    max_queued_per_clip: int = 64
    limits: Limits = field(default_factory=Limits)
    preroll_limit: int = 48
    cold_preroll: int = 12
    inline_wait: float = 3.0
    max_heads: int = 4
    head_live: float = 30.0
    threads: Optional[int] = None
    batch_max: Optional[int] = None  # clips' frames run as one batch; None: BATCH_MAX on CUDA, 1 (off) on the CPU
    preload: Sequence[str] = ("mobilenetv3",)
    path_map: PathMap = field(default_factory=PathMap)
    remembered_replies: int = 4096
    ready_file: Optional[str] = None
    shared_memory: int = 4 * 1024 ** 3  # bytes of clients' segments mapped at most; 0: none offered
    colour_on: str = "auto"  # where every clip's colour runs: auto (torch on CUDA, OCIO on the CPU), ocio, torch

    def batch_size(self) -> int:
        """The most clips' frames one network call runs: ``batch_max``, else by device."""
        if self.batch_max is not None:
            return self.batch_max
        return BATCH_MAX if self.device.startswith("cuda") else 1

    def check(self) -> None:
        """Raise BadParameter for settings that contradict each other or make no sense."""
        for name in ("workers", "readers", "writers", "max_clips", "max_queued_per_clip", "max_heads",
                     "memory_budget"):
            if getattr(self, name) < 1:
                raise BadParameter(f"{name.replace('_', '-')} {getattr(self, name)} must be at least 1")
        if self.preroll_limit < 0 or not 0 <= self.cold_preroll <= self.preroll_limit:
            raise BadParameter(f"cold-preroll {self.cold_preroll} must be in 0..preroll-limit ({self.preroll_limit})")
        # Not NaN, and within a day: a worker waits on the condition for these, and a wait past
        # the platform's time_t (1e300, inf) raises in the worker and stops it.
        if not (0 <= self.inline_wait <= MAX_WAIT_S and 0 <= self.head_live <= MAX_WAIT_S):
            raise BadParameter(f"inline-wait and head-live must be 0..{MAX_WAIT_S} seconds")
        if self.batch_max is not None and self.batch_max < 1:
            raise BadParameter(f"batch-max {self.batch_max} must be at least 1 (1: each frame alone)")
        if self.threads is not None and self.threads < 1:
            raise BadParameter(f"threads {self.threads} must be at least 1")
        from rvm_engine.clip import COLOUR_ON  # torch comes with it: not at import time

        if self.colour_on not in COLOUR_ON:
            raise BadParameter(f"colour-on {self.colour_on!r} is not one of {', '.join(COLOUR_ON)}")
        if self.shared_memory < 0:
            raise BadParameter(f"shared-memory {self.shared_memory} must be 0 (none) or more bytes")
        if self.limits.max_image_side < 1:
            raise BadParameter(f"max-image-side {self.limits.max_image_side} must be at least 1")

