"""The host-side client as a host lives with it: time-outs that mean what they say, retries that
attach to a run in progress, a busy server backed off from, error classes a host catches by
type, path mapping, and the client folder copied into a host and run without the engine."""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest
import zmq

from bridge_server.client import BridgeClient
from bridge_server.client import errors as bridge_errors
from bridge_server.client.errors import BridgeTimeout, ServerBusy, VersionMismatch
from bridge_server.client.protocol import PROTOCOL_VERSION

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT_FOLDER = os.path.join(REPO, "bridge_server", "client")


def free_address():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


class ScriptedServer:
    """A ROUTER that answers each request with the replies ``script(header, attempt)`` returns
    (``attempt`` counts the times that request id was seen)."""

    def __init__(self, script):
        self.socket = zmq.Context.instance().socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"
        self.script = script
        self.seen = []
        self.attempts = {}
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.running = True
        self.thread.start()

    def _serve(self):
        while self.running:
            if not self.socket.poll(50):
                continue
            identity, _, header, *_ = self.socket.recv_multipart()
            request = json.loads(header)
            self.seen.append(request)
            attempt = self.attempts[request["id"]] = self.attempts.get(request["id"], 0) + 1
            for reply, reply_buffers in self.script(request, attempt):
                self.socket.send_multipart([identity, b"", json.dumps(reply).encode(), *reply_buffers])

    def close(self):
        self.running = False
        self.thread.join()
        self.socket.close(0)


def ok(request, **fields):
    return dict({"protocol": PROTOCOL_VERSION, "id": request["id"], "op": request["op"], "ok": True}, **fields)


def error(request, code, message="it went wrong"):
    return dict(ok(request), ok=False, error={"code": code, "message": message})


def test_a_silent_address_gives_up_after_the_time_it_was_given_and_says_so():
    started = time.monotonic()
    with BridgeClient(free_address(), timeout=1.5, retries=2) as client:
        with pytest.raises(BridgeTimeout) as caught:
            client.hello()
    elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 4.0
    assert "in 1.5 s (3 tries)" in str(caught.value) and "rvm-bridge serve" in str(caught.value)
    assert isinstance(caught.value, TimeoutError)


def test_a_server_that_starts_late_is_reached_by_reconnecting(tmp_path):
    from bridge_server.server import BridgeServer
    from bridge_server.server_config import ServerConfig

    address = free_address()
    answers = []
    client_thread = threading.Thread(
        target=lambda: answers.append(BridgeClient(address, timeout=30, retries=60).hello()))
    client_thread.start()
    time.sleep(1.0)
    server = BridgeServer(ServerConfig(roots=[str(tmp_path)], address=address, preload=()))
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    try:
        client_thread.join(60)
        assert answers and answers[0]["server"] == "rvm-bridge"
    finally:
        server.stop()
        serving.join(30)


def test_a_frame_slower_than_a_try_is_waited_for_through_still_running_notes_and_sent_once():
    # The first attempt is never answered (a slow frame); each retry is told the work goes on;
    # the real reply comes on the third attempt. The client must not give up or count it twice.
    def script(request, attempt):
        if request["op"] == "hello" or attempt == 1:
            return [] if request["op"] != "hello" else [(ok(request, server="rvm-bridge"), [])]
        if attempt == 2:
            return [(ok(request, pending=True, running_s=1.0), [])]
        return [(ok(request, status="done"), [])]

    server = ScriptedServer(script)
    try:
        with BridgeClient(server.address, timeout=1.2, retries=1) as client:
            assert client.call("status")[0]["status"] == "done"
        ids = [request["id"] for request in server.seen if request["op"] == "status"]
        assert len(set(ids)) == 1 and len(ids) == 3  # one request, sent again with the same id
    finally:
        server.close()


def test_a_busy_server_is_backed_off_from_and_the_request_sent_again_until_it_is_taken():
    def script(request, attempt):
        if attempt <= 3:
            return [(error(request, "busy", "clip sh010 already has 64 frames queued"), [])]
        return [(ok(request, status="taken"), [])]

    server = ScriptedServer(script)
    try:
        started = time.monotonic()
        with BridgeClient(server.address, timeout=5) as client:
            assert client.call("status")[0]["status"] == "taken"
        assert server.attempts[server.seen[0]["id"]] == 4
        assert time.monotonic() - started > 0.1  # backed off between tries, not hammering
    finally:
        server.close()


def test_a_server_busy_for_longer_than_the_client_waits_raises_server_busy():
    server = ScriptedServer(lambda request, attempt: [(error(request, "busy", "queue full"), [])])
    try:
        with BridgeClient(server.address, timeout=5, busy_wait=0.5) as client:
            with pytest.raises(ServerBusy, match="queue full") as caught:
                client.call("status")
        assert caught.value.retryable
    finally:
        server.close()


def test_replies_to_abandoned_attempts_are_ignored():
    def script(request, attempt):
        yield ok(dict(request, id="an-old-attempt"), server="stale"), []
        yield ok(request, server="fresh"), []

    server = ScriptedServer(script)
    try:
        with BridgeClient(server.address, timeout=5) as client:
            assert client.hello()["server"] == "fresh"
    finally:
        server.close()


@pytest.mark.parametrize("code", sorted(bridge_errors.ERROR_CODES))
def test_every_error_code_becomes_its_own_class_a_host_can_catch(code):
    server = ScriptedServer(lambda request, attempt: [(error(request, code, f"about /show/p.0001.exr ({code})"), [])])
    try:
        with BridgeClient(server.address, timeout=5, busy_wait=0.2) as client:
            with pytest.raises(bridge_errors.BridgeError) as caught:
                client.call("status")
        expected = bridge_errors.CLASS_FOR_CODE[code]
        assert type(caught.value) is expected and expected is not bridge_errors.RemoteError
        assert caught.value.code == code and "/show/p.0001.exr" in str(caught.value)
    finally:
        server.close()


def test_a_server_speaking_another_protocol_is_refused():
    server = ScriptedServer(lambda request, attempt: [(dict(ok(request), protocol=PROTOCOL_VERSION + 1), [])])
    try:
        with BridgeClient(server.address, timeout=5) as client:
            with pytest.raises(VersionMismatch):
                client.hello()
    finally:
        server.close()


def test_an_inline_reply_whose_buffer_is_short_is_a_protocol_error():
    def script(request, attempt):
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
            with pytest.raises(bridge_errors.BadBuffer):
                clip.frame(1)
    finally:
        server.close()


def older_or_refusing_bridge(attach_code):
    """A scripted bridge that says it offers shared memory but answers attach_shared with
    ``attach_code`` (an older bridge: unknown_op), and echoes inline frames' alpha back."""
    def script(request, attempt):
        if request["op"] == "hello":
            yield ok(request, server="rvm-bridge", shared_memory=True, limits={"max_shared_bytes": 1 << 30}), []
        elif request["op"] == "open_clip":
            yield ok(request, clip=request["clip"], settings={"inline_outputs": True, "inline_dtype": "float32"}), []
        elif request["op"] == "attach_shared":
            yield error(request, attach_code, "not here"), []
        else:
            spec = {"buffer": 0, "shape": [1, 1, 1], "dtype": "float32"}
            yield ok(request, clip="c", frame=request["frame"], made={"how": "sequence"}, inline={"alpha": spec},
                     timings={"server_total": 0.001}), [b"\0\0\x80?"]
    return ScriptedServer(script)


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="shared memory is Linux-only")
@pytest.mark.parametrize("code", ["unknown_op", "shared_memory_refused"])
def test_a_bridge_that_will_not_map_the_clients_memory_gets_its_frames_over_zeromq_and_the_log_says_why(code, caplog):
    from bridge_server.client import InlineFrame

    server = older_or_refusing_bridge(code)
    try:
        with BridgeClient(server.address, timeout=5) as client:
            clip = client.open_clip("c", inline_outputs=True)
            with caplog.at_level("INFO", logger="rvm_bridge.client"):
                results = list(clip.frames([(n, None, InlineFrame(b"\0" * 12, 1, 1, 3)) for n in (1, 2, 3)]))
            assert [r.images["alpha"].data for r in results] == [b"\0\0\x80?"] * 3
            assert "not here" in client.shared_memory_note and "over ZeroMQ" in caplog.text
            list(clip.frames([(4, None, InlineFrame(b"\0" * 12, 1, 1, 3))]))  # asks once, not per frame
        frames = [request for request in server.seen if request["op"] == "frame"]
        assert all("inline" in request["source"] for request in frames) and len(frames) == 4
        assert [request["op"] for request in server.seen].count("attach_shared") == 1
    finally:
        server.close()


def test_a_python_without_memfd_create_sends_inline_frames_over_zeromq_without_asking(monkeypatch):
    # Python 3.7 hosts, macOS and Windows: os.memfd_create is missing.
    from bridge_server.client import InlineFrame, shared

    monkeypatch.setattr(shared, "_MEMFD_CREATE", None)
    server = older_or_refusing_bridge("internal")
    try:
        with BridgeClient(server.address, timeout=5) as client:
            clip = client.open_clip("c", inline_outputs=True)
            assert clip.frame(1, image=InlineFrame(b"\0" * 12, 1, 1, 3)).images["alpha"].data == b"\0\0\x80?"
            assert "Python 3.8+" in client.shared_memory_note
        assert "attach_shared" not in [request["op"] for request in server.seen]
    finally:
        server.close()


def test_paths_are_mapped_on_the_way_out_and_back_with_the_clients_own_rules_first():
    from bridge_server.client.pathmap import PathMap

    def script(request, attempt):
        if request["op"] == "hello":
            yield ok(request, server="rvm-bridge", os="posix",
                     path_map=[["Q:\\lib", "/mnt/lib"], ["/Volumes/shows", "/mnt/shows"]]), []
        elif request["op"] == "open_clip":
            yield ok(request, clip=request["clip"]), []
        else:
            yield ok(request, clip="c", frame=7, made={"how": "sequence", "exact": True},
                     plates={"alpha": "/mnt/shows/a.0007.exr"}), []

    server = ScriptedServer(script)
    try:
        rules = PathMap(PathMap.parse("P:\\shows=/mnt/shows").rules, client_windows=True)
        with BridgeClient(server.address, timeout=5, path_map=rules) as client:
            clip = client.open_clip("c", source="P:\\shows\\p.####.exr", outputs={"alpha": "Q:\\lib\\a.####.exr"})
            result = clip.frame(7, path="P:\\shows\\p.0007.exr")
            with pytest.raises(bridge_errors.PathNotMapped, match="RVM_BRIDGE_PATH_MAP"):
                clip.frame(8, path="R:\\elsewhere\\p.0008.exr")
        opened = next(r for r in server.seen if r["op"] == "open_clip")
        assert opened["settings"]["source"] == "/mnt/shows/p.####.exr"
        assert opened["settings"]["outputs"]["alpha"] == "/mnt/lib/a.####.exr"  # the server's own rule
        assert [r["source"] for r in server.seen if r["op"] == "frame"] == [{"path": "/mnt/shows/p.0007.exr"}]
        assert result.plates == {"alpha": "P:\\shows\\a.0007.exr"}  # not the server's Mac rule
    finally:
        server.close()


def _imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


def test_the_client_folder_imports_only_the_standard_library_pyzmq_and_itself():
    allowed = set(sys.stdlib_module_names) | {"zmq"}
    for name in sorted(os.listdir(CLIENT_FOLDER)):
        if name.endswith(".py"):
            for module, level in _imports(os.path.join(CLIENT_FOLDER, name)):
                assert level == 1 or module.split(".")[0] in allowed, (name, module)
                assert level <= 1, (name, module)  # never reaches out of the folder


def test_the_client_folder_runs_on_python_3_7():
    pytest.importorskip("vermin", reason="vermin (a dev dependency) checks the minimum Python version")
    files = [os.path.join(CLIENT_FOLDER, name) for name in sorted(os.listdir(CLIENT_FOLDER)) if name.endswith(".py")]
    run_vermin = "import sys; from vermin.main import main; sys.exit(main())"
    done = subprocess.run([sys.executable, "-c", run_vermin, "-t=3.7-", "--no-tips", "--violations", *files],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


BLOCKED_HOST = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "numpy", "OpenImageIO", "rvm_engine", "bridge_server", "fileseq", "tqdm"):
            raise ImportError(f"{name} is not in this host")
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, sys.argv[1])
import rvm_matte_client as bridge
address, source, alpha = sys.argv[2:5]
summary = bridge.render_through_bridge(address, source, "1001-1004", alpha=alpha)
print("made", [(r.frame, r.how, r.exact) for r in summary.results])
with bridge.BridgeClient(address) as client:  # an inline frame, through shared memory where it can
    clip = client.open_clip(first_frame=1, inline_outputs=True)
    result = clip.frame(1, image=bridge.InlineFrame(bytes(64 * 64 * 3 * 4), 64, 64, 3))
    print("inline", sorted(result.images), "shared" if "shared_in" in result.timings else client.shared_memory_note)
"""


def test_the_client_folder_copied_into_a_host_renders_through_a_bridge_without_the_engine(tmp_path):
    from .test_server_support import FIRST, same_plate, start_bridge, write_shot

    plugin = tmp_path / "nuke_plugin"
    shutil.copytree(CLIENT_FOLDER, plugin / "rvm_matte_client", ignore=shutil.ignore_patterns("__pycache__"))
    root = tmp_path / "show"
    pattern = write_shot(str(root / "plates"), count=4)
    server = start_bridge(str(root))
    try:
        alpha = str(root / "out" / "alpha.####.exr")
        env = dict(os.environ, PYTHONPATH="")  # nothing of the repository on the path
        done = subprocess.run([sys.executable, "-c", BLOCKED_HOST, str(plugin), server.address, pattern, alpha],
                              capture_output=True, text=True, timeout=180, cwd=str(tmp_path), env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "made [(1001, 'sequence', True)" in done.stdout
        shared = "shared" if hasattr(os, "memfd_create") else "needs Linux"
        assert f"inline ['alpha', 'foreground'] {shared}" in done.stdout, done.stdout
        reference = str(root / "reference")
        from .test_server_support import reference_render

        expected = reference_render(pattern, list(range(FIRST, FIRST + 4)), reference)["alpha"]
        assert all(same_plate(alpha, expected, frame) for frame in range(FIRST, FIRST + 4))
    finally:
        assert server.stop() == 0, server.log_tail()


def test_a_client_whose_message_has_no_peer_to_take_it_says_so_in_time_instead_of_hanging():
    # After a CURVE refusal ZeroMQ tears the connection down, and a DEALER with no peer blocks in
    # send() for ever (a loaded CI run hung 25 minutes in the CURVE story). IMMEDIATE makes that
    # state certain here: no connection ever completes, so no peer ever takes a message.
    class NoPeer(BridgeClient):
        def _connect(self):
            if self._socket is None:
                socket = self._context.socket(zmq.DEALER)
                socket.setsockopt(zmq.LINGER, 0)
                socket.setsockopt(zmq.IMMEDIATE, 1)
                self._monitor = socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
                socket.connect(f"tcp://127.0.0.1:{_free_port()}")
                self._socket = socket
            return self._socket

    outcome = []

    def ask():
        try:
            with NoPeer("tcp://127.0.0.1:1", timeout=1.5, retries=2) as client:
                client.hello()
        except BaseException as error:  # noqa: BLE001 - checked below
            outcome.append(error)

    thread = threading.Thread(target=ask, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the client blocked in send with no peer"
    assert len(outcome) == 1 and isinstance(outcome[0], BridgeTimeout), outcome
    assert time.monotonic() - started < 10


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
