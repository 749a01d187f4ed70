"""What the bridge answers besides frames: hello, describe_models, status, shared memory,
clips opened and closed, render plans and ratio sweeps.

Each operation takes the decoded request and returns its reply's fields; ``_guarded`` runs one
and turns a failure into an error reply (``internal`` for a bug, counted and logged). Which
thread runs which is the server's choice (server.py): the quick ones on the socket's thread,
opening a clip and planning a render on a small control pool, a ratio sweep on its own.
``Operations`` sits on ``Replies`` (replies.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Dict

from rvm_engine import __version__

from .client.errors import ClipConflict
from .client.parameters import CLIP_PARAMETERS, MODELS
from .client.protocol import Request
from .clips import Clip, ClipRegistry, ModelCache
from .curve import HandshakeWatch
from .frame_order import ClipOrder
from .replies import Replies
from .roots import PlateRoots
from .shared_segments import SharedSegments
from .stages import FramePipeline

log = logging.getLogger("rvm_bridge.server")


class Operations(Replies):
    """The operations a ``BridgeServer`` answers other than ``frame``, one method each."""

    # Set by BridgeServer.__init__ (server.py).
    engine: Any
    roots: PlateRoots
    lock: threading.Condition
    models: ModelCache
    registry: ClipRegistry
    pipeline: FramePipeline
    shared: SharedSegments
    handshakes: HandshakeWatch
    internal_errors: int
    started: float

    def _guarded(self, operation: Any, request: Request) -> None:
        try:
            self.deliver(request.id, operation(request), [])
        except Exception as error:  # noqa: BLE001 - every failure becomes an error reply
            code, message = self.engine.error_code(error)
            if code == "internal":
                self.internal_errors += 1
                log.error("%s failed", request.op, exc_info=error)
            self.deliver(request.id, {"error": {"code": code, "message": message}}, [])

    def _hello(self, request: Request) -> Dict[str, Any]:
        limits = self.config.limits
        return {"server": "rvm-bridge", "version": __version__, "device": self.config.device, "os": os.name,
                "roots": list(self.roots.roots), "path_map": self.config.path_map.to_json(),
                "preroll_limit": self.config.preroll_limit, "shared_memory": self.shared.offered,
                "limits": {"max_header_bytes": limits.max_header_bytes, "max_buffer_bytes": limits.max_buffer_bytes,
                           "max_image_side": limits.max_image_side, "max_image_pixels": limits.max_image_pixels,
                           "max_clips": self.config.max_clips, "max_shared_bytes": self.shared.limit}}

    def _describe_models(self, request: Request) -> Dict[str, Any]:
        loaded = {model["variant"] for model in self.models.describe()}
        choices = {"compression": tuple(getattr(self.engine, "compressions", ()))}
        return {"models": [{"name": name, "help": text, "loaded": name in loaded} for name, text in MODELS],
                "parameters": [parameter.describe(choices.get(parameter.name)) for parameter in CLIP_PARAMETERS],
                "colour_spaces": self.engine.colour_spaces(), "device": self.config.device}

    def _status(self, request: Request) -> Dict[str, Any]:
        now = time.monotonic()
        with self.lock:
            clips = [clip.describe(self.engine.state_nbytes, now) for clip in self.registry.clips.values()]
            fps = self.pipeline.throughput()
            memory = self.registry.memory()
            frames_total = self.pipeline.frames_total
            dropped = dict(self.registry.dropped, recent=list(self.registry.recent_drops))
            over = self.registry.over_budget
            batches, batched = self.pipeline.batches, self.pipeline.batched_frames
        return {"uptime_s": round(now - self.started, 3), "device": self.config.device,
                "models": self.models.describe(), "clips": clips,
                "queue_depth": sum(clip["queued"] + clip["busy"] for clip in clips),
                "requests_in_flight": len(self.in_flight), "frames_total": frames_total,
                "throughput_fps": round(fps, 3), "memory_bytes": memory["total"], "memory": memory,
                "memory_budget": self.registry.memory_budget, "over_budget_bytes": over, "dropped": dropped,
                "internal_errors": self.internal_errors + self.pipeline.internal_errors,
                "refused_connections": self.handshakes.refused,
                "batching": {"batch_max": self.pipeline.batch_max, "batches": batches, "batched_frames": batched,
                             "mean_batch": round(batched / batches, 3) if batches else 0.0},
                "shared_memory": self.shared.describe(), "colour_road": self.engine.colour_road()}

    def _attach_shared(self, request: Request) -> Dict[str, Any]:
        assert request.attach is not None
        return self.shared.attach(request.attach)

    def _detach_shared(self, request: Request) -> Dict[str, Any]:
        return self.shared.detach(request.segment, request.token)

    def _open_clip(self, request: Request) -> Dict[str, Any]:
        settings = self._server_paths(request.settings)
        model = self.models.get(settings["variant"], settings["checkpoint"], settings["refiner"])
        requested = dict(settings)
        if settings["source"] and settings["first_frame"] is None:
            settings["first_frame"] = self.engine.first_frame_on_disk(settings["source"])
        self.engine.new_state(settings, model)  # fails now, not on the first frame, for unusable settings
        self.engine.check_outputs(settings)
        config = self.config
        now = time.monotonic()
        with self.lock:
            existing = self.registry.clips.get(request.clip)
            if existing is not None:
                if existing.requested != requested:
                    raise ClipConflict(f"clip {request.clip} is open with other settings; close it or use another id")
                existing.last_used = now
                return {"clip": request.clip, "kind": existing.kind, "attached": True, "settings": existing.settings}
            evicted = self.registry.make_room(now)
            if evicted:
                log.info("clip limit: closed idle clip %s", evicted)
            order = ClipOrder(sequence=bool(settings["source"]), first_frame=settings["first_frame"],
                              preroll_limit=config.preroll_limit, cold_preroll=config.cold_preroll,
                              wait_s=config.inline_wait, max_heads=config.max_heads, live_s=config.head_live)
            clip = self.registry.clips[request.clip] = Clip(request.clip, settings, model, order)
            clip.requested = requested
        return {"clip": request.clip, "kind": clip.kind, "attached": False, "settings": settings}

    def _server_paths(self, settings: Dict[str, Any]) -> Dict[str, Any]:
        """Settings with every path checked against the roots (spelled as the roots are)."""
        resolved = dict(settings)
        if settings["source"]:
            resolved["source"] = self.roots.resolve_pattern(settings["source"], "source")
        for key in ("checkpoint", "ocio_config"):
            if settings[key] and not settings[key].startswith("ocio://"):
                resolved[key] = self.roots.resolve(settings[key], key)
        resolved["outputs"] = {name: (self.roots.resolve_pattern(pattern, name + " output") if pattern else None)
                               for name, pattern in settings["outputs"].items()}
        return resolved

    def _plan_render(self, request: Request) -> Dict[str, Any]:
        plan = request.plan
        assert plan is not None
        source = self.roots.resolve_pattern(plan.source, "source")
        outputs = {name: self.roots.resolve_pattern(pattern, name + " output")
                   for name, pattern in plan.outputs.items() if pattern}
        return self.engine.plan_render(source, plan.frames, outputs, resume=plan.resume, shot_start=plan.shot_start,
                                       preroll=plan.preroll, resume_limit=plan.resume_limit)

    def _try_ratios(self, request: Request) -> Dict[str, Any]:
        """Matte a stretch of a sequence at several ratios and write the contact sheet (long: it
        runs on a control thread, and the client hears "still running" while it waits)."""
        asked = request.ratios
        assert asked is not None
        settings = dict(asked.settings)
        for key in ("checkpoint", "ocio_config"):
            if settings[key] and not settings[key].startswith("ocio://"):
                settings[key] = self.roots.resolve(settings[key], key)
        source = self.roots.resolve_pattern(asked.source, "source")
        sheet = self.roots.resolve(asked.sheet, "contact sheet") if asked.sheet else None
        model = self.models.get(settings["variant"], settings["checkpoint"], settings["refiner"])
        # The sweep takes minutes: the sheet's folder is checked again right before it is written
        # (a folder swapped for a symlink meanwhile must not lead out of the roots).
        return self.engine.try_ratios(source, asked.frames, asked.ratios, settings, model, preroll=asked.preroll,
                                      sheet=sheet, check_sheet=lambda path: self.roots.check_folder_of(
                                          path, "contact sheet"))

    def _close_clip(self, request: Request) -> Dict[str, Any]:
        with self.lock:
            clip = self.registry.get(request.clip)
            if clip.busy or clip.order.pending:
                log.info("closing clip %s with frames in hand: they are still answered", clip.id)
            del self.registry.clips[clip.id]
            queued = [ticket for entry in clip.order.pending.values() for ticket in entry.tickets]
            deferred = [r for entry in clip.order.pending.values() for r in entry.deferred]
            clip.order.pending.clear()
            made = len(clip.order.made)
            clip.forget_outputs()
            self.lock.notify_all()
        message = f"clip {clip.id} was closed before this frame ran"
        for request_id in [ticket.request.id for ticket in queued] + [r.id for r in deferred]:
            self.deliver(request_id, {"error": {"code": "unknown_clip", "message": message}}, [])
        return {"clip": clip.id, "frames_run": clip.frames_run, "frames_made": made}
