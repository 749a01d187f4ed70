"""The host-side client: time-outs, reconnection, stale replies, error mapping, and what it may import."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import zmq

from bridge_server.client import BridgeClient
from bridge_server.client.errors import BridgeTimeout, ProtocolError, RemoteError
from bridge_server.client.protocol import PROTOCOL_VERSION

HOST_SIDE = ["client.py", "protocol.py", "errors.py", "pathmap.py", "parameters.py", "keys.py", "launch.py",
             "addresses.py"]
PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bridge_server")


def free_address():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


class ScriptedServer:
    """A ROUTER that answers each request with the replies ``script(header)`` returns."""

    def __init__(self, script):
        self.socket = zmq.Context.instance().socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"
        self.script = script
        self.seen = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.running = True
        self.thread.start()

    def _serve(self):
        while self.running:
            if not self.socket.poll(50):
                continue
            identity, empty, header, *buffers = self.socket.recv_multipart()
            request = json.loads(header)
            self.seen.append(request)
            for reply, reply_buffers in self.script(request):
                self.socket.send_multipart([identity, b"", json.dumps(reply).encode(), *reply_buffers])

    def close(self):
        self.running = False
        self.thread.join()
        self.socket.close(0)


def ok(request, **fields):
    return dict({"protocol": PROTOCOL_VERSION, "id": request["id"], "op": request["op"], "ok": True}, **fields)


def test_a_silent_address_raises_bridge_timeout_after_the_retries():
    started = time.monotonic()
    with BridgeClient(free_address(), timeout=0.2, retries=2) as client:
        with pytest.raises(BridgeTimeout) as caught:
            client.hello()
    assert 0.5 < time.monotonic() - started < 5
    assert "rvm-bridge serve" in str(caught.value) and isinstance(caught.value, TimeoutError)


def test_a_server_that_starts_late_is_reached_by_reconnecting(tmp_path):
    from bridge_server.server import BridgeServer, ServerConfig

    address = free_address()
    answers = []
    client_thread = threading.Thread(
        target=lambda: answers.append(BridgeClient(address, timeout=0.3, retries=40).hello()))
    client_thread.start()
    time.sleep(0.8)
    server = BridgeServer(ServerConfig(roots=[str(tmp_path)], address=address, preload=()))
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    try:
        client_thread.join(30)
        assert answers and answers[0]["server"] == "rvm-bridge"
    finally:
        server.stop()
        serving.join(30)


def test_replies_to_abandoned_attempts_are_ignored():
    def script(request):
        yield ok(dict(request, id="an-old-attempt"), server="stale"), []
        yield ok(request, server="fresh"), []

    server = ScriptedServer(script)
    try:
        with BridgeClient(server.address, timeout=5) as client:
            assert client.hello()["server"] == "fresh"
    finally:
        server.close()


def test_a_server_error_reply_becomes_the_matching_exception():
    def script(request):
        yield dict(ok(request), ok=False, error={"code": "plate_error", "message": "cannot read /show/p.0001.exr"}), []

    server = ScriptedServer(script)
    try:
        with BridgeClient(server.address, timeout=5) as client:
            with pytest.raises(RemoteError) as caught:
                client.hello()
        assert caught.value.code == "plate_error" and "/show/p.0001.exr" in str(caught.value)
    finally:
        server.close()


def test_a_server_speaking_another_protocol_is_refused():
    server = ScriptedServer(lambda request: [(dict(ok(request), protocol=PROTOCOL_VERSION + 1), [])])
    try:
        with BridgeClient(server.address, timeout=5) as client:
            with pytest.raises(ProtocolError) as caught:
                client.hello()
        assert caught.value.code == "protocol_version"
    finally:
        server.close()


def test_an_inline_reply_whose_buffer_is_short_is_a_protocol_error():
    def script(request):
        if request["op"] == "hello":
            yield ok(request, server="rvm-bridge"), []
        elif request["op"] == "open_clip":
            yield ok(request, clip=request["clip"]), []
        else:
            spec = {"buffer": 0, "shape": [2, 2, 1], "dtype": "float32"}
            yield ok(request, clip="c", frame=1, made={"how": "sequence"}, inline={"alpha": spec}), [b"\0" * 15]

    server = ScriptedServer(script)
    try:
        with BridgeClient(server.address, timeout=5) as client:
            clip = client.open_clip("c", inline_outputs=True)
            with pytest.raises(ProtocolError) as caught:
                clip.frame(1)
        assert caught.value.code == "bad_buffer"
    finally:
        server.close()


def test_paths_are_mapped_on_the_way_out_and_back():
    from bridge_server.client.pathmap import PathMap

    def script(request):
        if request["op"] == "hello":
            yield ok(request, server="rvm-bridge", path_map=[["Q:\\lib", "/mnt/lib"]]), []
        elif request["op"] == "open_clip":
            yield ok(request, clip=request["clip"]), []
        else:
            yield ok(request, clip="c", frame=7, made={"how": "sequence", "exact": True},
                     plates={"alpha": "/mnt/shows/a.0007.exr"}), []

    server = ScriptedServer(script)
    try:
        with BridgeClient(server.address, timeout=5, path_map=PathMap.parse("P:\\shows=/mnt/shows")) as client:
            clip = client.open_clip("c", source="P:\\shows\\p.####.exr", outputs={"alpha": "Q:\\lib\\a.####.exr"})
            result = clip.frame(7, path="P:\\shows\\p.0007.exr")
        opened = next(r for r in server.seen if r["op"] == "open_clip")
        assert opened["settings"]["source"] == "/mnt/shows/p.####.exr"
        assert opened["settings"]["outputs"]["alpha"] == "/mnt/lib/a.####.exr"  # the server's own rule
        assert server.seen[-1]["source"] == {"path": "/mnt/shows/p.0007.exr"}
        assert result.plates == {"alpha": "P:\\shows\\a.0007.exr"}
    finally:
        server.close()


def test_the_host_side_modules_import_no_torch_numpy_oiio_or_engine():
    code = ("import sys, bridge_server.client, bridge_server.client.launch, bridge_server.client.render; "
            "heavy = [m for m in ('torch', 'numpy', 'OpenImageIO', 'rvm_engine') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_host_side_modules_run_on_python_3_7():
    pytest.importorskip("vermin", reason="vermin (a dev dependency) checks the minimum Python version")
    files = [os.path.join(PACKAGE, name) for name in HOST_SIDE]
    run_vermin = "import sys; from vermin.main import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", run_vermin, "-t=3.7-", "--no-tips", "--violations", *files],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
