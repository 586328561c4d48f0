"""Real gateway processes for the acceptance tests: configs on disk, ``serve`` subprocesses.

Each gateway is started as ``python -m gateway serve --config FILE`` on 127.0.0.1
with a free port and a SQLite journal in the test's folder; the environment
(``IKZ_SCHEMA_DIR``, token variables) is passed on. Every wait is bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
STARTUP_SECONDS = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def token_digest(token: str) -> str:
    """The ``token_sha256`` of a partner token."""
    return hashlib.sha256(token.encode()).hexdigest()


def wait_until(
    condition: Callable[[], bool], *, timeout: float, interval: float = 0.1, what: str = ""
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds.

    Raises:
        AssertionError: the condition did not hold in time.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


@dataclass
class GatewayProcess:
    """One gateway: its folder, config file, port, and the running ``serve`` process if any."""

    home: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)
    #: Client TLS context for a gateway serving HTTPS ([http.tls]); plain HTTP without.
    tls: ssl.SSLContext | None = None
    #: Further ``serve`` options (e.g. ``--processes 2``).
    serve_args: tuple[str, ...] = ()
    #: ``--log-level`` of the process (the CLI's default, WARNING, when unset).
    log_level: str | None = None
    #: Start ``serve`` as the leader of its own process group (as a shell job is),
    #: so a test can signal the group as Ctrl-C in a terminal does.
    own_group: bool = False

    @property
    def config(self) -> Path:
        """The gateway.toml of this gateway."""
        return self.home / "gateway.toml"

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def write_config(self, text: str) -> None:
        """Write the configuration file (TOML text)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.config.write_text(text, encoding="utf-8")

    def start(self, *, wait: bool = True) -> None:
        """Start ``serve`` and, with ``wait``, block until ``/v1/health`` answers."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        log = self.home / f"serve-{self.starts}.log"
        self.logs.append(log)
        with log.open("wb") as sink:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway",
                    *(("--log-level", self.log_level) if self.log_level else ()),
                    "serve",
                    "--config",
                    str(self.config),
                    *self.serve_args,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                process_group=0 if self.own_group else None,
            )
        if wait:
            wait_until(self.healthy, timeout=STARTUP_SECONDS, what=f"{self.url}/v1/health")

    def healthy(self) -> bool:
        """Whether the process runs and its health route answers 200."""
        if self.process is None or self.process.poll() is not None:
            if self.process is not None:
                raise AssertionError(f"gateway exited with {self.process.returncode}: {self.log()}")
            return False
        try:
            with urllib.request.urlopen(
                f"{self.url}/v1/health", timeout=2, context=self.tls
            ) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def children(self) -> list[int]:
        """Pids of the processes ``serve`` started (``--processes``; Linux ``/proc``)."""
        assert self.process is not None
        pid = self.process.pid
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except FileNotFoundError:
            return []
        return [int(p) for p in text.split()]

    def kill(self) -> None:
        """``kill -9`` the process and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM the process and wait for a clean exit; its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def log(self) -> str:
        """The tail of the latest log."""
        if not self.logs:
            return ""
        return self.logs[-1].read_text(errors="replace")[-4000:]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``ikz-gateway ARGS --config <this config>`` and return the finished process."""
        done = subprocess.run(
            [sys.executable, "-m", "gateway", *args, "--config", str(self.config)],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{args} exited {done.returncode}: {done.stdout}{done.stderr}")
        return done

    def status(self, limit: int = 1000) -> list[dict[str, Any]]:
        """``status --json``: the latest messages as dicts."""
        views: list[dict[str, Any]] = json.loads(
            self.cli("status", "--json", "--limit", str(limit)).stdout
        )
        return views


def environment(**extra: str) -> dict[str, str]:
    """This process's environment (with IKZ_SCHEMA_DIR) plus ``extra``."""
    env = dict(os.environ)
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT)
    return env


def http_post(
    url: str, body: bytes, *, token: str, content_type: str = "application/xml", timeout: float = 30
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` with a bearer token; the status and the JSON answer."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
