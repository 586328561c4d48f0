"""A gateway ``serve`` subprocess for the benchmarks, with the configuration they share.

Every benchmark that runs the real gateway runs the same one: the Landesarchiv
(``LA:LAB``) accepting small Abgaben from Stadt Beispielstadt (``060:0815``) and
filing them in a filesystem transfer folder, without producing receipts. Only the
journal URL and the folders differ (SQLite in its own folder, or one PostgreSQL
database shared by several processes).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

#: The partner's bearer token in every benchmark configuration.
TOKEN = "bench-token"
#: Worker and destination concurrency of each process.
CONCURRENCY = 8
_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _toml(value: object) -> str:
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def write_config(
    home: Path,
    *,
    port: int,
    journal: str,
    blobs: Path,
    transfer: Path,
    processes: int = 1,
    concurrency: int = CONCURRENCY,
) -> Path:
    """``home/gateway.toml`` for LA:LAB: the journal, blob store and transfer folder given.

    ``processes`` is ``[http] processes``: how many gateway processes ``serve`` runs;
    ``concurrency`` both ``[worker] concurrency`` and the destination's.
    """
    home.mkdir(parents=True, exist_ok=True)
    transfer.mkdir(parents=True, exist_ok=True)
    path = home / "gateway.toml"
    path.write_text(
        f"""
[node]
id = "landesarchiv"
behoerdenkennung = "LA:LAB"

[storage]
journal = {_toml(journal)}
blobs = {_toml(blobs)}

[http]
host = "127.0.0.1"
port = {port}
processes = {processes}

[worker]
concurrency = {concurrency}
poll_interval_seconds = 0.2

[[partners]]
id = "beispielstadt"
behoerdenkennung = "060:0815"
token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"

[destinations.archiv]
type = "filesystem"
directory = {_toml(transfer)}
naming = "short"
concurrency = {concurrency}

[[routes]]
empfaenger = "LA:LAB"
destination = "archiv"

# One-way: the benchmarks measure intake and delivery. Receipts (0403/0402) would be
# further messages, and without a route back to the Stadt they could only be retried.
[processes]
auto_receipts = false
""",
        encoding="utf-8",
    )
    return path


class ServeProcess:
    """``python -m gateway serve`` with ``home/gateway.toml``, its output in ``home/serve.log``."""

    def __init__(self, home: Path, *, port: int) -> None:
        self.home = home
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = (home / "serve.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(home / "gateway.toml")],
            cwd=_ROOT,
            env={**os.environ, "PYTHONPATH": str(_ROOT)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def wait_healthy(self, timeout: float = 60) -> None:
        """Poll ``/v1/health`` until 200.

        Raises:
            RuntimeError: the process exited or did not answer in time.
        """
        import aiohttp

        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"serve exited: {self.log_tail()}")
                try:
                    async with session.get(f"{self.url}/v1/health") as answer:
                        if answer.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"serve did not become healthy: {self.log_tail()}")

    def peak_rss_mib(self) -> float:
        """``VmHWM`` of the process in MiB (``ru_maxrss`` would report the parent's)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")

    def log_tail(self) -> str:
        """The end of the process's log."""
        return (self.home / "serve.log").read_text(errors="replace")[-2000:]

    def terminate(self) -> None:
        """Ask the process to stop (graceful: in-flight deliveries finish)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        """Wait for the exit after ``terminate``; SIGKILL after 30 s."""
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        """``terminate`` and ``wait``."""
        self.terminate()
        self.wait()
