"""Start a bridge server as a child process, wait until it answers, stop it cleanly.

For the README's one-command demo, the benchmark, the tests and a host's "start a local
bridge" button: ``with ServerProcess(roots) as server: BridgeClient(server.address)...``. The
child (``python -m bridge_server serve``, run by ``python``: the bridge's own interpreter, not
the host's) listens on a free loopback port unless told otherwise and writes its bound address
to a ready file, so there is no port race. Standard library and pyzmq only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import IO, Any, List, Optional, Sequence

from .client import BridgeClient
from .errors import BridgeError, BridgeTimeout


class ServerProcess:
    """A ``python -m bridge_server serve`` child; ``extra_args`` are more ``serve`` options."""

    def __init__(self, roots: Sequence[str], *, address: str = "tcp://127.0.0.1:0", extra_args: Sequence[str] = (),
                 log_path: Optional[str] = None, python: str = sys.executable) -> None:
        self.roots = list(roots)
        self.requested_address = address
        self.extra_args = list(extra_args)
        self.log_path = log_path
        self.python = python
        self.address = ""
        self.process: Optional[subprocess.Popen] = None
        self._log: Optional[IO[Any]] = None

    def command(self, ready_file: str) -> List[str]:
        command = [self.python, "-m", "bridge_server", "serve", "--address", self.requested_address,
                   "--ready-file", ready_file]
        for root in self.roots:
            command += ["--root", root]
        return command + self.extra_args

    def start(self, timeout: float = 120.0, keys_dir: Optional[str] = None) -> str:
        """Start the child and wait until it answers ``hello``; returns its address.

        Raises BridgeTimeout (with the end of its log) if it exits or stays silent.
        """
        ready = os.path.join(tempfile.mkdtemp(prefix="rvm-bridge-"), "ready")
        self._log = open(self.log_path, "a+b") if self.log_path else tempfile.TemporaryFile()
        flags = subprocess.CREATE_NEW_PROCESS_GROUP if os.name == "nt" else 0  # type: ignore[attr-defined]
        self.process = subprocess.Popen(self.command(ready), stdout=self._log, stderr=subprocess.STDOUT,
                                        creationflags=flags)
        deadline = time.monotonic() + timeout
        while not (os.path.exists(ready) and open(ready, encoding="utf-8").read().endswith("\n")):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BridgeTimeout(f"the bridge did not start: {self.log_tail()}")
            time.sleep(0.05)
        with open(ready, encoding="utf-8") as handle:
            self.address = handle.read().strip()
        with BridgeClient(self.address, timeout=5.0, retries=3, keys_dir=keys_dir) as client:
            client.hello()
        return self.address

    def stop(self, timeout: float = 30.0) -> Optional[int]:
        """Ask the child to stop (SIGTERM; CTRL_BREAK on Windows) and wait; kill it past ``timeout``."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.CTRL_BREAK_EVENT if os.name == "nt" else signal.SIGTERM)  # type: ignore[attr-defined]
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the child's log (for error messages)."""
        if self._log is None:
            return ""
        try:
            self._log.flush()
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - chars))
            return self._log.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def __enter__(self) -> ServerProcess:
        try:
            self.start()
        except BridgeError:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
