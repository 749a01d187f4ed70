"""Render a plate sequence through a running bridge (``rvm-bridge render ... --server ADDRESS``).

The server reads the source plates itself and writes the same plates an in-process render
writes: the clip's first frame is the first frame rendered, so the recurrent state starts
cold exactly where the in-process render's does, and frames go in order with a few requests
queued so reading, the network and writing overlap on the server. ``render_through_bridge``
needs no numpy or torch; ``render_remote`` (the command line's branch) borrows the engine's
sequence and plate checks so the same mistakes are refused as in process.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from .client import BridgeClient, FrameResult
from .pathmap import PathMap

Progress = Callable[[int, int, FrameResult], None]


def render_through_bridge(address: str, source: str, frames: Sequence[int], *, alpha: Optional[str] = None,
                          foreground: Optional[str] = None, rgba: Optional[str] = None,
                          settings: Optional[Dict[str, Any]] = None, progress: Optional[Progress] = None,
                          timeout: float = 300.0, retries: int = 3, keys_dir: Optional[str] = None,
                          path_map: Optional[PathMap] = None, window: int = 3, close: bool = True,
                          first_frame: Optional[int] = None) -> List[FrameResult]:
    """Matte ``frames`` (in the order given) of the ``source`` pattern on the bridge at ``address``.

    Paths are the client's (mapped with ``path_map`` and the server's rules); output patterns
    ``alpha``, ``foreground``, ``rgba`` and other clip ``settings`` are those of
    docs/protocol.md. ``first_frame`` (default: the first of ``frames``) is where the clip's
    state starts cold. ``progress(done, total, result)`` is called after each frame. Returns
    the results in frame order. Raises BridgeError subclasses (BridgeTimeout when the server
    does not answer, RemoteError for plates it cannot read or write).
    """
    frames = [int(frame) for frame in frames]
    if not frames:
        return []
    clip_settings = dict(settings or {})
    clip_settings.update(source=source, first_frame=frames[0] if first_frame is None else first_frame,
                         outputs={"alpha": alpha, "foreground": foreground, "rgba": rgba})
    results: List[FrameResult] = []
    with BridgeClient(address, timeout=timeout, retries=retries, keys_dir=keys_dir, path_map=path_map,
                      name="rvm-bridge render") as client:
        clip = client.open_clip(**clip_settings)
        try:
            for result in clip.frames([(frame, None, None) for frame in frames], window=window):
                results.append(result)
                if progress is not None:
                    progress(len(results), len(frames), result)
        finally:
            if close:
                clip.close()
    return results


def render_remote(args: argparse.Namespace) -> int:
    """The ``--server`` branch of ``rvm-bridge render``: ``args`` are the render command's."""
    from rvm_engine.errors import PlateError
    from rvm_engine.sequences import parse_sequence

    source = os.path.abspath(args.input)
    seq = parse_sequence(source, args.frames)
    frames = sorted(set(seq.frames))  # the recurrent state needs frames in order, as in process
    first_frame = frames[0] if frames else None
    outputs = {name: (os.path.abspath(getattr(args, name)) if getattr(args, name) else None)
               for name in ("alpha", "foreground", "rgba")}
    if not any(outputs.values()):
        raise PlateError("nothing to write: give at least one of --alpha, --foreground or --rgba")
    for pattern in outputs.values():
        if pattern:  # the in-process checks: a frame token, a usable folder, never over the source
            seq.output(pattern, create_folder=True)
    if args.resume:
        from rvm_engine.plates import first_incomplete

        frames = frames[first_incomplete(frames, [pattern for pattern in outputs.values() if pattern]):]
    settings = {"variant": args.variant, "checkpoint": args.checkpoint and os.path.abspath(args.checkpoint),
                "refiner": args.refiner, "downsample_ratio": args.downsample_ratio, "colour_space": args.colour_space,
                "ocio_config": args.ocio_config, "to_model": args.to_model, "precision": args.precision,
                "layer": args.layer, "pixel_type": args.pixel_type, "compression": args.compression,
                "rgba_premultiplied": not args.straight}
    bar = _bar(len(frames), not args.no_progress)
    started = time.monotonic()
    # A resumed render keeps the clip's first frame, so the server pre-rolls up to the resumed one.
    results = render_through_bridge(args.server, source, frames, settings=settings, progress=bar,
                                    timeout=args.timeout, keys_dir=args.keys,
                                    first_frame=first_frame, alpha=outputs["alpha"],
                                    foreground=outputs["foreground"], rgba=outputs["rgba"])
    made: Dict[str, int] = {}
    for result in results:
        made[result.how] = made.get(result.how, 0) + 1
    how = ", ".join(f"{count} {name}" for name, count in sorted(made.items()))
    print(f"wrote {len(results)} frames through {args.server} in {time.monotonic() - started:.1f} s ({how})")
    return 0


def _bar(total: int, show: bool) -> Optional[Progress]:
    if not show:
        return None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="frame")

    def advance(done: int, total: int, result: FrameResult) -> None:
        bar.update(1)
        if done == total:
            bar.close()

    return advance
