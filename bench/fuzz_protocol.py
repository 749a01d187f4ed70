"""Protocol fuzz: many structure-aware messages through the decoder, then a flood at a real server.

Phase 1 builds messages the way tests/test_protocol.py does, without hypothesis's example
limits: a valid request of some op, edits anywhere in its header (any field, nested ones
included, replaced by arbitrary JSON, dropped, or joined by unknown fields; the op swapped;
the inline image resized), odd buffers, and now and then damaged bytes or nesting as deep as
the parser allows. Each goes through ``decode_request`` with the server's default limits; the
codes are tallied, and the script exits 1 listing any message that raised anything but a
documented ``BridgeError``.

Phase 2 starts a real bridge (no model preloaded; paths point under its root), floods it from a
raw DEALER socket with some of those messages (unique ids, so none is answered from the reply
cache), counts the replies by code, then checks the server still answers ``hello`` and its
process is alive, and reports the bugs it logged (``internal`` replies).

    .venv/bin/python bench/fuzz_protocol.py                      # 100,000 messages, 3,000 sent
    .venv/bin/python bench/fuzz_protocol.py --count 20000 --seed 7 --server-count 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # fuzz the code beside this script, not an installed copy

from bridge_server.client.errors import BridgeError  # noqa: E402
from bridge_server.client.parameters import INLINE_DTYPES  # noqa: E402
from bridge_server.client.protocol import OPS, PROTOCOL_VERSION, Limits, decode_request, request_header  # noqa: E402

DECODER_CODES = {"bad_message", "protocol_version", "unknown_op", "bad_buffer", "bad_dtype", "too_large",
                 "bad_parameter"}
SHOW = "/shows/abc"  # phase 2 moves it under the server's root

SETTINGS = {
    "variant": "mobilenetv3", "checkpoint": None, "refiner": "deep_guided_filter", "downsample_ratio": 0.5,
    "framing": "portrait", "backend": "auto", "colour_space": None, "ocio_config": None, "to_model": "srgb", "precision": "float32", "layer": None,
    "source": None, "first_frame": 1001, "outputs": {"alpha": f"{SHOW}/alpha.####.exr", "foreground": None,
                                                     "rgba": f"{SHOW}/rgba.####.exr"},
    "rgba_premultiplied": True, "pixel_type": "half", "compression": "zip", "inline_outputs": True,
    "inline_dtype": "float16",
}
INLINE = {"buffer": 0, "shape": [16, 16, 3], "dtype": "float16"}
SHARED = {"segment": "0123456789abcdef", "offset": 4096, "shape": [16, 16, 3], "dtype": "float16"}
BASES: List[Tuple[Dict[str, Any], List[bytes]]] = [
    (request_header("hello", "h-1", client="fuzz"), []),
    (request_header("describe_models", "d-1"), []),
    (request_header("status", "s-1"), []),
    (request_header("open_clip", "o-1", clip="sh010", settings=SETTINGS), []),
    (request_header("open_clip", "o-2", clip="sh020", settings=dict(SETTINGS, source=f"{SHOW}/plate.####.exr",
                                                                     inline_outputs=False)), []),
    (request_header("frame", "f-1", clip="sh010", frame=1001, refresh=True, write=["alpha"],
                    source={"path": f"{SHOW}/plate.1001.exr"}), []),
    (request_header("frame", "f-2", clip="sh010", frame=1002, strict=False, write=[], source={"inline": INLINE}),
     [b"\0" * (16 * 16 * 3 * 2)]),
    (request_header("frame", "f-3", clip="sh020", frame=1003), []),
    (request_header("close_clip", "c-1", clip="sh010"), []),
    (request_header("plan_render", "p-1", source=f"{SHOW}/plate.####.exr", frames="1001-1010",
                    outputs={"alpha": f"{SHOW}/alpha.####.exr"}, resume=True, shot_start=1001, preroll=4,
                    resume_limit=10), []),
    (request_header("plan_render", "p-2", source=f"{SHOW}/plate.####.exr", frames=[1001, 1003], shot_start=None),
     []),
    (request_header("frame", "f-4", clip="sh010", frame=1004, source={"shared": SHARED},
                    shared_outputs={"segment": SHARED["segment"], "offset": 8192, "bytes": 4096}), []),
    # This process's stdin: not a memfd, so a live bridge refuses it (shared_memory_refused).
    (request_header("attach_shared", "a-1", pid=os.getpid(), fd=0, bytes=8192, token="0f" * 16), []),
    (request_header("detach_shared", "x-1", segment=SHARED["segment"], token="0f" * 16), []),
    (request_header("try_ratios", "t-1", source=f"{SHOW}/plate.####.exr", frames="1001-1003", ratios=[0.25, 0.5],
                    preroll=1, sheet=f"{SHOW}/ratios.png", settings={"variant": "mobilenetv3", "framing": "full-body"}),
     []),
]
FIELD_NAMES = sorted({"protocol", "op", "id", "client", "clip", "settings", "frame", "strict", "refresh", "write",
                      "source", "path", "inline", "buffer", "shape", "dtype", "frames", "outputs", "resume",
                      "shot_start", "preroll", "resume_limit", "ratios", "sheet", "shared", "shared_outputs",
                      "segment", "offset", "bytes", "pid", "fd", "token", *SETTINGS})
ODD = [None, True, False, 0, -1, 1, 2, 3, 4, 64, 65, 1.5, 0.5, 1e308, 10 ** 30, -10 ** 30, 10 ** 9, 10 ** 9 + 1,
       float("inf"), float("-inf"), float("nan"), "", "x" * 5000, "\0", "/p\0.exr", "/p\ud800.exr", "\udcff",
       "float16", "float32", "uint8", "alpha", "foreground", "rgba", "Alpha", "frame", "plan_render", "sh010",
       "1001-1100", f"{SHOW}/plate.####.exr", "mobilenetv3", "ocio://default", PROTOCOL_VERSION, [], [[[]]], {},
       {"a": {}}, ["alpha"], ["alpha", "alpha"], [16, 16, 3], [1, 1, 4], [100000, 100000, 4], [0, 5, 3],
       {"path": f"{SHOW}/p.exr"}, {"inline": INLINE}, {"alpha": None}, [1001, True]]
DEEP = re.compile(r'"@@DEEP:(\d+)@@"')


def json_value(rng: random.Random, depth: int = 0) -> Any:
    """An arbitrary JSON value, leaning on the values decoders get wrong."""
    roll = rng.random()
    if roll < 0.35:
        return rng.choice(ODD)
    if roll < 0.45:
        return rng.choice([rng.randint(-3, 70), rng.randint(-2 ** 63, 2 ** 63), rng.uniform(-1e6, 1e6),
                           rng.getrandbits(rng.randint(1, 200))])
    if roll < 0.55:
        return "".join(chr(rng.choice([rng.randint(32, 126), rng.randint(0, 0x10FFFF)]))
                       for _ in range(rng.randint(0, 12)))
    if roll < 0.57:
        return f"@@DEEP:{rng.randint(900, 1100)}@@"  # spliced in as nested lists when encoded
    if depth >= 3 or roll < 0.78:
        return rng.choice([None, True, "x", 0, rng.choice(ODD)])
    if roll < 0.89:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(FIELD_NAMES + ["", "zz"]): json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def paths_in(tree: Any, path: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
    found = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, child in items:
        found.append(path + (key,))
        found.extend(paths_in(child, path + (key,)))
    return found


def replaced(tree: Any, path: Tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    tree = tree.copy()
    tree[path[0]] = value if len(path) == 1 else replaced(tree[path[0]], path[1:], value)
    return tree


def dropped(tree: Any, path: Tuple[Any, ...]) -> Any:
    tree = tree.copy()
    if len(path) == 1:
        del tree[path[0]]
    else:
        tree[path[0]] = dropped(tree[path[0]], path[1:])
    return tree


def encoded(header: Any) -> bytes:
    text = json.dumps(header, allow_nan=True).replace("-Infinity", "-1e999").replace("Infinity", "1e999")
    return DEEP.sub(lambda match: "[" * int(match.group(1)) + "]" * int(match.group(1)), text).encode("utf-8")


def declared_size(header: Any) -> Optional[int]:
    try:
        spec = header["source"]["inline"]
        sides = list(spec["shape"]) + [INLINE_DTYPES[spec["dtype"]]]
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if len(sides) != 4 or not all(type(side) is int and 0 <= side <= 4096 for side in sides):
        return None
    size = sides[0] * sides[1] * sides[2] * sides[3]
    return size if size <= 1 << 18 else None


def message(rng: random.Random) -> List[bytes]:
    """One structure-aware message: a valid request, edited."""
    header, buffers = rng.choice(BASES)
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
        paths = paths_in(header)
        edit = rng.choice(["replace", "replace", "replace", "drop", "add", "op", "resize"])
        if edit == "replace":
            header = replaced(header, rng.choice(paths or [()]), json_value(rng))
        elif edit == "drop" and paths:
            header = dropped(header, rng.choice(paths))
        elif edit == "add" and isinstance(header, dict):
            homes = [()] + [path for path in paths if isinstance(_at(header, path), dict)]
            header = replaced(header, rng.choice(homes) + (rng.choice(FIELD_NAMES + ["zz"]),), json_value(rng))
        elif edit == "op" and isinstance(header, dict):
            header = dict(header, op=rng.choice(OPS + ("teleport", "")))
        elif edit == "resize" and ("source", "inline", "shape") in paths:
            side = [rng.randint(1, 64), rng.randint(0, 20000), rng.choice([0, -1, 16385, 10 ** 12])]
            header = replaced(header, ("source", "inline", "shape"),
                              [rng.choice(side), rng.choice(side), rng.choice([1, 3, 4, 5, 0])])
    if rng.random() < 0.4:
        size = declared_size(header)
        options: List[List[bytes]] = [[], [rng.randbytes(rng.randint(0, 256))], buffers * 2]
        if size is not None:
            options += [[b"\0" * size], [b"\0" * (size + 1)]]
        buffers = rng.choice(options)
    parts = [encoded(header)] + list(buffers)
    return damaged(rng, parts) if rng.random() < 0.08 else parts


def _at(tree: Any, path: Tuple[Any, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def damaged(rng: random.Random, parts: List[bytes]) -> List[bytes]:
    """Byte damage: flipped bits, cuts, inserted garbage, lost or extra parts."""
    parts = [bytearray(part) for part in parts]
    for _ in range(rng.randint(1, 3)):
        data = parts[rng.randrange(len(parts))]
        action = rng.choice(["flip", "cut", "insert", "drop", "add"])
        if action == "flip" and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif action == "cut" and data:
            del data[rng.randrange(len(data)):]
        elif action == "insert":
            at = rng.randint(0, len(data))
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif action == "drop" and len(parts) > 1:
            parts.remove(data)
        elif action == "add":
            parts.append(bytearray(rng.randbytes(rng.randint(0, 64))))
    return [bytes(part) for part in parts]


def decode_one(parts: List[bytes], limits: Limits = Limits()) -> Tuple[str, str]:
    """The message's outcome (``ok:<op>`` or its code) and, if it broke the contract, why."""
    try:
        request = decode_request(parts, limits)
    except BridgeError as error:
        if error.code not in DECODER_CODES:
            return error.code, f"undocumented code {error.code}: {_shown(parts)}"
        return error.code, ""
    except Exception as error:  # noqa: BLE001 - the very thing counted
        return "ESCAPED " + type(error).__name__, f"{type(error).__name__}: {str(error)[:120]}: {_shown(parts)}"
    return "ok:" + request.op, ""


def _shown(parts: List[bytes]) -> str:
    """The header (cut at 400 bytes) and the buffers' lengths."""
    return repr(parts[0][:400]) + (f" + buffers of {[len(part) for part in parts[1:]]} bytes" if parts[1:] else "")


def flood(messages: List[List[bytes]], idle_s: float) -> int:
    """Phase 2; returns how many things went wrong."""
    import zmq

    from bridge_server.client import BridgeClient, ServerProcess

    root = tempfile.mkdtemp(prefix="rvm-fuzz-")
    os.makedirs(os.path.join(root, "shows", "abc"))
    log_path = os.path.join(root, "server.log")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    sends = [_for_server(parts, index, root) for index, parts in enumerate(messages)]
    problems = 0
    server = ServerProcess([root], extra_args=["--preload", "", "--log-level", "WARNING"], log_path=log_path)
    started = time.perf_counter()
    server.start()
    print(f"server up at {server.address} in {time.perf_counter() - started:.1f} s (root {root})")
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(server.address)
    replies: Counter = Counter()
    sent, received = 0, 0
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN | zmq.POLLOUT)
    started = last_reply = time.perf_counter()
    try:
        # Send as fast as the socket takes them, reading replies as they come; stop when every
        # message is answered or the server has been silent for idle_s after the last send.
        while received < len(sends) and (sent < len(sends) or time.perf_counter() - last_reply < idle_s):
            events = dict(poller.poll(100))
            if events.get(socket, 0) & zmq.POLLOUT and sent < len(sends):
                socket.send_multipart([b""] + sends[sent])
                sent += 1
                last_reply = max(last_reply, time.perf_counter()) if sent == len(sends) else last_reply
            while socket.poll(0, zmq.POLLIN):
                frames = socket.recv_multipart()
                received += 1
                last_reply = time.perf_counter()
                replies[_reply_code(frames)] += 1
        elapsed = time.perf_counter() - started
        print(f"sent {sent} messages, {received} replies in {elapsed:.1f} s ({received / elapsed:.0f} replies/s); "
              f"{sent - received} unanswered after {idle_s:.0f} s idle")
        for code, count in sorted(replies.items(), key=lambda item: -item[1]):
            print(f"  {count:6d}  {code}")
        alive = server.process is not None and server.process.poll() is None
        with BridgeClient(server.address, timeout=10) as client:
            hello = client.hello()
            status = client.status()
        print(f"after the flood: process alive {alive}, hello answered by {hello.get('server')} "
              f"{hello.get('version')}, internal errors {status.get('internal_errors')}, "
              f"clips open {len(status.get('clips', []))}")
        problems += (not alive) + (sent - received) + replies["internal"] + int(status.get("internal_errors") or 0)
    except BridgeError as error:
        print(f"SERVER DOES NOT ANSWER after the flood: {error}")
        problems += 1
    finally:
        socket.close()
        context.term()
        code = server.stop()
        print(f"server stopped with exit code {code}")
    for line in _logged_bugs(log_path)[:12]:
        print("  logged:", line)
    if problems:
        print(f"the server's log: {log_path}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return problems


def _for_server(parts: List[bytes], index: int, root: str) -> List[bytes]:
    """``parts`` with paths under the server's root and, where it has a usable id, a unique one."""
    head = parts[0].replace(SHOW.encode(), (root + "/shows/abc").encode())
    try:
        header = json.loads(head)
    except (ValueError, RecursionError):
        return [head] + parts[1:]
    if isinstance(header, dict) and isinstance(header.get("id"), str) and re.fullmatch(r"[A-Za-z0-9._:-]{1,64}",
                                                                                      header["id"]):
        head = head.replace(json.dumps(header["id"]).encode(), f'"fz-{index}"'.encode(), 1)
    return [head] + parts[1:]


def _reply_code(frames: List[bytes]) -> str:
    try:
        header = json.loads(frames[1])
    except (IndexError, ValueError):
        return "UNREADABLE REPLY"
    if header.get("ok"):
        return "pending" if header.get("pending") else f"ok:{header.get('op') or '?'}"
    return str((header.get("error") or {}).get("code"))


def _logged_bugs(log_path: str) -> List[str]:
    """Distinct tracebacks' last lines in the server's log."""
    try:
        lines = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    ends = Counter(line for index, line in enumerate(lines)
                   if re.match(r"^\w+(\.\w+)*(Error|Exception)\b", line) and index > 0)
    return [f"{count} x {line[:200]}" for line, count in ends.most_common()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="messages decoded in phase 1 (default 100000)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, printed)")
    parser.add_argument("--server-count", type=int, default=3000,
                        help="of those, how many are sent to a real server in phase 2 (0: skip; default 3000)")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds without a reply before giving up")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2 ** 32)
    print(f"seed {seed} (replay: --seed {seed})")
    rng = random.Random(seed)

    outcomes: Counter = Counter()
    escapes: List[str] = []
    chosen: List[List[bytes]] = []  # a uniform sample for phase 2, kept as the messages go by
    made = decoding = 0.0
    for index in range(args.count):
        started = time.perf_counter()
        parts = message(rng)
        made += time.perf_counter() - started
        started = time.perf_counter()
        outcome, escape = decode_one(parts)
        decoding += time.perf_counter() - started
        outcomes[outcome] += 1
        if escape:
            escapes.append(escape)
        if len(chosen) < args.server_count:
            chosen.append(parts)
        elif rng.randrange(index + 1) < args.server_count:
            chosen[rng.randrange(args.server_count)] = parts
    print(f"phase 1: {args.count} messages made in {made:.1f} s, decoded in {decoding:.1f} s "
          f"({args.count / decoding:.0f}/s)")
    for outcome, count in sorted(outcomes.items(), key=lambda item: -item[1]):
        print(f"  {count:7d}  {100 * count / args.count:5.1f} %  {outcome}")
    if escapes:
        print(f"{len(escapes)} messages broke the contract (first 20):")
        for line in escapes[:20]:
            print("  " + line)

    problems = 0
    if chosen:
        print(f"phase 2: {len(chosen)} of them at a real server")
        problems = flood(chosen, args.idle)
    return 1 if escapes or problems else 0


if __name__ == "__main__":
    sys.exit(main())
