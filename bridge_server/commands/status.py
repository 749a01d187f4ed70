"""``rvm-bridge status``: what a running bridge holds and how fast it goes."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..client.protocol import DEFAULT_ADDRESS


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("status", help="show what a running bridge holds and how fast it goes")
    p.add_argument("--address", "--server", dest="address", default=DEFAULT_ADDRESS,
                   help=f"bridge address (default {DEFAULT_ADDRESS})")
    p.add_argument("--keys", metavar="DIR", help="CURVE keys for a server started with --keys")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds of silence before giving up (default 5)")
    p.add_argument("--path-map", action="append", default=[], metavar="CLIENT=SERVER",
                   help="path mapping for the paths shown (repeatable)")
    p.add_argument("--json", action="store_true", help="print the raw status reply")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..client.client import BridgeClient
    from ..client.pathmap import PathMap

    path_map = PathMap.from_environment()
    path_map.rules += PathMap.parse(";".join(args.path_map)).rules
    with BridgeClient(args.address, timeout=args.timeout, retries=1, keys_dir=args.keys, path_map=path_map) as client:
        hello = client.hello()
        status = client.status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(format_status(args.address, status, [client.path_map.to_client(root) for root in hello.get("roots", [])]))
    return 0


def format_status(address: str, status: Any, roots: Any = ()) -> str:
    """The human-readable ``rvm-bridge status`` report."""
    memory = status.get("memory", {})
    dropped = status.get("dropped", {})
    lines = [f"bridge {address}: up {status['uptime_s']:.0f} s on {status['device']}"]
    if roots:
        lines.append(f"  roots: {', '.join(roots)}")
    lines += [f"  models loaded: {', '.join(m['variant'] for m in status['models']) or 'none'}",
              f"  queue depth: {status['queue_depth']} frames, {status['requests_in_flight']} requests in flight",
              f"  throughput: {status['throughput_fps']:.2f} frames/s over the last minute, "
              f"{status['frames_total']} frames in all",
              f"  memory: {status['memory_bytes'] / 2 ** 20:.1f} MiB of {status['memory_budget'] / 2 ** 20:.0f} MiB "
              f"(states {memory.get('states', 0) / 2 ** 20:.1f}, cached inline outputs "
              f"{memory.get('inline_outputs', 0) / 2 ** 20:.1f}, queued frames {memory.get('queued', 0) / 2 ** 20:.1f})",
              f"  dropped under the budget: {dropped.get('inline_outputs', 0)} cached inline outputs, "
              f"{dropped.get('states', 0)} recurrent states"]
    batching = status.get("batching")
    if batching and batching.get("batch_max", 1) > 1:
        lines.append(f"  batching: up to {batching['batch_max']} clips a network call; {batching['batches']} "
                     f"batches ran, {batching['mean_batch']:.1f} frames each on average")
    if status.get("over_budget_bytes"):
        lines.append(f"  over budget by {status['over_budget_bytes'] / 2 ** 20:.1f} MiB: only live states left "
                     "(raise --memory-budget)")
    lines.extend(f"    {line}" for line in dropped.get("recent", [])[-5:])
    shared = status.get("shared_memory") or {}
    if shared.get("offered"):
        owners = ", ".join(f"process {s['pid']} {s['bytes'] / 2 ** 20:.0f} MiB" for s in shared.get("segments", []))
        lines.append(f"  shared memory: {shared.get('bytes', 0) / 2 ** 20:.0f} of {shared.get('limit', 0) / 2 ** 20:.0f} "
                     f"MiB lent{' (' + owners + ')' if owners else ''}; {shared.get('dropped', 0)} dropped when "
                     "their process was gone")
    road = status.get("colour_road") or {}
    if road.get("road") == "direct":
        lines.append(f"  colour on the CPU: OCIO {road.get('ocio', '?')} straight on the frames")
    elif road:
        lines.append(f"  colour on the CPU: OCIO {road.get('ocio', '?')} through OpenImageIO, slower "
                     f"({road.get('why', 'reason not given')})")
    lines.append(f"  clips: {len(status['clips'])}")
    for clip in status["clips"]:
        heads = ", ".join(f"{h['frame']}{'' if h['exact'] else ' (not exact)'}" for h in clip["heads"])
        lines.append(f"    {clip['clip']} ({clip['kind']}, {clip['variant']}): "
                     f"{'states at frames ' + heads if heads else 'no state held (cold)'}; "
                     f"{clip['frames_made']} made, {clip['queued']} queued, {'busy' if clip['busy'] else 'idle'}, "
                     f"{clip['memory_bytes'] / 2 ** 20:.1f} MiB")
    if status.get("internal_errors"):
        lines.append(f"  internal errors: {status['internal_errors']} (see the server's log)")
    if status.get("refused_connections"):
        lines.append(f"  connections refused for CURVE keys: {status['refused_connections']}")
    return "\n".join(lines)
