"""A real bridge under load and abuse: many clients and clips, broken messages, a client killed
mid-frame, paths outside the roots, and CURVE keys. Whatever one peer does, the others are served."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from bridge_server.client import BridgeClient
from bridge_server.client.errors import BridgeError, BridgeTimeout, RemoteError
from bridge_server.client.launch import ServerProcess
from bridge_server.client.protocol import encode, request_header

from .test_server_support import FIRST, RawPeer, start_bridge, write_shot

COUNT = 50


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("farm"))
    pattern = write_shot(os.path.join(root, "plates"), count=COUNT, size=32)
    server = start_bridge(root, "--preroll-limit", "6", "--cold-preroll", "2", "--max-message", "1M",
                          "--inline-wait", "0.5", "--max-queued", "8")
    yield SimpleNamespace(root=root, pattern=pattern, server=server, address=server.address)
    assert server.stop() == 0, server.log_tail()


@pytest.fixture
def client(farm):
    with BridgeClient(farm.address, timeout=60) as connection:
        yield connection


def still_serving(farm):
    with BridgeClient(farm.address, timeout=10, retries=0) as other:
        return other.hello()["server"] == "rvm-bridge"


def test_four_clients_on_three_clips_of_fifty_frames_lose_and_duplicate_nothing(farm):
    with BridgeClient(farm.address) as client:
        made_before = client.status()["frames_total"]
    clips = [f"load-{n}" for n in range(3)]
    chunks = [list(range(FIRST + start, FIRST + min(start + 13, COUNT))) for start in range(0, COUNT, 13)]
    replies, errors = [], []

    def render(chunk):
        try:
            with BridgeClient(farm.address, timeout=120) as client:
                handles = [client.open_clip(clip_id, source=farm.pattern, first_frame=FIRST,
                                            outputs={"alpha": os.path.join(farm.root, clip_id, "a.####.exr")})
                           for clip_id in clips]
                for frame in chunk:
                    for handle in handles:
                        replies.append((handle.id, frame, handle.frame(frame)))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=render, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    asked = sorted((clip, frame) for clip in clips for frame in range(FIRST, FIRST + COUNT))
    assert sorted((clip, frame) for clip, frame, _ in replies) == asked
    assert all(result.clip == clip and result.frame == frame for clip, frame, result in replies)
    assert all(result.exact for clip, frame, result in replies if frame in chunks[0])
    for clip in clips:
        assert len(os.listdir(os.path.join(farm.root, clip))) == COUNT
    with BridgeClient(farm.address) as client:
        assert client.status()["frames_total"] - made_before == len(asked)


KILLED_CLIENT = """
import sys, time, zmq
from bridge_server.client import BridgeClient
from bridge_server.client.protocol import encode, request_header
address, pattern, out = sys.argv[1:4]
BridgeClient(address).open_clip("doomed", source=pattern, first_frame=1001, outputs={"alpha": out})
socket = zmq.Context.instance().socket(zmq.DEALER)
socket.connect(address)
socket.send_multipart([b""] + encode(request_header("frame", "doomed-1", clip="doomed", frame=1006)))
print("sent", flush=True)
time.sleep(60)
"""


def doomed_clip(client):
    return next((clip for clip in client.status()["clips"] if clip["clip"] == "doomed"), None)


def wait_for(condition, seconds=60.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_client_killed_mid_frame_leaves_the_server_and_other_clips_unaffected(farm, client):
    out = os.path.join(farm.root, "doomed", "a.####.exr")
    doomed = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, farm.address, farm.pattern, out],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert doomed.stdout.readline().strip() == "sent"
        # Kill it only once the server holds its frame (queued, running or made).
        wait_for(lambda: sum((doomed_clip(client) or {}).get(key, 0) for key in ("queued", "busy", "frames_made")))
    finally:
        doomed.kill()
        doomed.wait()
    clip = client.open_clip(source=farm.pattern, first_frame=FIRST,
                            outputs={"alpha": os.path.join(farm.root, "survivor", "a.####.exr")})
    assert clip.frame(FIRST).exact
    # Its frame was made and written; the reply just had no taker.
    wait_for(lambda: os.path.exists(os.path.join(farm.root, "doomed", "a.1006.exr")))
    assert doomed_clip(client)["frames_made"] == 1
    assert still_serving(farm)


def inline_header(**inline):
    spec = {"buffer": 0, "shape": [4, 4, 3], "dtype": "float16"}
    spec.update(inline)
    return request_header("frame", "bad-inline", clip="anything", frame=1, source={"inline": spec})


@pytest.mark.parametrize("parts, code", [
    ([b"{not json"], "bad_message"),
    (encode(inline_header(), [b"\0" * 95]), "bad_buffer"),
    (encode(inline_header(dtype="uint8"), [b"\0" * 48]), "bad_dtype"),
    (encode(inline_header(shape=[60000, 60000, 4]), [b"\0" * 96]), "too_large"),
    (encode(dict(request_header("hello", "old-client"), protocol=0)), "protocol_version"),
    (encode(request_header("frame", "nobody", clip="never-opened", frame=1)), "unknown_clip"),
    (encode(request_header("rewind", "what")), "unknown_op"),
])
def test_broken_messages_get_their_error_code_and_the_server_goes_on(farm, parts, code):
    peer = RawPeer(farm.address)
    peer.send(parts)
    header, _ = peer.reply()
    peer.close()
    assert header["ok"] is False and header["error"]["code"] == code
    assert header["error"]["message"]
    assert still_serving(farm)


def test_a_message_over_the_size_limit_is_dropped_and_the_server_goes_on(farm):
    peer = RawPeer(farm.address)
    peer.send(encode(inline_header(shape=[512, 512, 4], dtype="float16"), [b"\0" * (512 * 512 * 8)]))
    assert peer.reply(timeout=1.0) is None
    peer.close()
    assert still_serving(farm)


def test_a_clip_flooded_with_frames_refuses_those_past_its_queue_limit(farm, client):
    client.open_clip("flooded", first_frame=FIRST, outputs={"alpha": os.path.join(farm.root, "flooded", "a.####.exr")})
    peer = RawPeer(farm.address)
    for frame in range(FIRST + 20, FIRST + 30):  # none follows the first frame: they all wait
        path = os.path.join(farm.root, "plates", f"plate.{frame:04d}.exr")
        peer.send(encode(request_header("frame", f"flood-{frame}", clip="flooded", frame=frame, source={"path": path})))
    replies = [peer.reply(30)[0] for _ in range(10)]
    peer.close()
    refused = [reply["error"]["code"] for reply in replies if not reply["ok"]]
    assert refused == ["too_large", "too_large"]
    assert sorted(reply["frame"] for reply in replies if reply["ok"]) == list(range(FIRST + 20, FIRST + 28))


def test_plates_outside_the_roots_are_refused(farm, client, tmp_path):
    with pytest.raises(RemoteError) as caught:
        client.open_clip(outputs={"alpha": str(tmp_path / "a.####.exr")})
    assert caught.value.code == "path_outside_roots"
    with pytest.raises(RemoteError) as caught:
        client.open_clip(outputs={"alpha": os.path.join(farm.root, "..", "escape", "a.####.exr")})
    assert caught.value.code == "path_outside_roots"
    link = os.path.join(farm.root, "link-out")
    os.symlink(str(tmp_path), link)
    with pytest.raises(RemoteError) as caught:
        client.open_clip(outputs={"alpha": os.path.join(link, "a.####.exr")})
    assert caught.value.code == "path_outside_roots"
    clip = client.open_clip(first_frame=FIRST, outputs={"alpha": os.path.join(farm.root, "by-path", "a.####.exr")})
    with pytest.raises(RemoteError) as caught:
        clip.frame(FIRST, path="/etc/hostname")
    assert caught.value.code == "path_outside_roots"
    assert still_serving(farm)


def test_a_curve_server_admits_only_clients_holding_the_key(tmp_path):
    from bridge_server.client.keys import make_keys

    keys = str(tmp_path / "keys")
    make_keys(keys)
    stranger = str(tmp_path / "stranger")
    make_keys(stranger)
    # The stranger knows the server's public key but holds a client key the server never admitted.
    shutil.copy(os.path.join(keys, "server.key"), os.path.join(stranger, "server.key"))
    server = ServerProcess([str(tmp_path)], address="tcp://0.0.0.0:0", extra_args=["--keys", keys, "--preload", ""])
    server.start(keys_dir=keys)
    try:
        address = server.address.replace("0.0.0.0", "127.0.0.1")
        with BridgeClient(address, timeout=5, keys_dir=keys) as admitted:
            assert admitted.hello()["server"] == "rvm-bridge"
        for keys_dir in (None, stranger):
            with BridgeClient(address, timeout=0.5, retries=1, keys_dir=keys_dir) as refused:
                with pytest.raises(BridgeTimeout):
                    refused.hello()
    finally:
        assert server.stop() == 0


def test_a_server_beyond_loopback_without_keys_refuses_to_start(tmp_path):
    from bridge_server.server import BridgeServer, ServerConfig

    with pytest.raises(BridgeError, match="CURVE"):
        BridgeServer(ServerConfig(roots=[str(tmp_path)], address="tcp://0.0.0.0:0", preload=()), engine=object())


def test_a_malformed_listening_address_is_named_as_such_not_as_a_security_problem(tmp_path):
    from bridge_server.server import BridgeServer, ServerConfig

    with pytest.raises(BridgeError, match="not tcp://HOST:PORT"):
        BridgeServer(ServerConfig(roots=[str(tmp_path)], address="foo", preload=()), engine=object())


def test_status_from_the_command_line_reports_the_clips(farm, client):
    client.open_clip("shown", source=farm.pattern, first_frame=FIRST,
                     outputs={"alpha": os.path.join(farm.root, "shown", "a.####.exr")}).frame(FIRST)
    shown = subprocess.run([sys.executable, "-c", "import sys; from bridge_server.server_cli import *; "
                            "import argparse; p = argparse.ArgumentParser(); s = p.add_subparsers(); "
                            "add_status_parser(s); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))",
                            "status", "--address", farm.address, "--json"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert "shown" in {clip["clip"] for clip in status["clips"]}


def test_keys_are_made_once_and_kept_unless_forced(tmp_path, capsys):
    import argparse

    from bridge_server.server_cli import add_keys_parser

    parser = argparse.ArgumentParser()
    add_keys_parser(parser.add_subparsers())
    args = parser.parse_args(["keys", str(tmp_path / "keys")])
    assert args.func(args) == 0
    made = sorted(os.listdir(tmp_path / "keys"))
    assert made == ["authorized_clients", "client.key_secret", "server.key", "server.key_secret"]
    assert os.stat(tmp_path / "keys" / "server.key_secret").st_mode & 0o077 == 0
    with pytest.raises(BridgeError, match="--force"):
        args.func(args)
    assert "client.key_secret" in capsys.readouterr().out
