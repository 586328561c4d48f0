"""A Kommune's gateway imports a routed Abgabe into its DMS: ``dev dms-sim``, ``serve``, ``dms export``.

Both run as the CLI starts them, on 127.0.0.1: the simulator from the unchanged
WSDL in ../shared, the gateway with a ``type = "dms"`` destination whose WSDL is
the simulator's ``?wsdl``. The simulator is restarted midway to show its store
is durable.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import pytest

from adapters.dms import dmsin_names as names
from adapters.xdomea import builders
from adapters.xdomea.container import read_container, write_container
from gateway import demo_data
from tests import xdomea_specs
from tests.acceptance.processes import ROOT, GatewayProcess, environment, free_port, wait_until
from tests.dms_support import WSDL


class SimProcess:
    """``ikz-gateway dev dms-sim`` in a subprocess, with the facts it prints."""

    def __init__(self, data: Path, port: int = 0) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "dev",
                "dms-sim",
                "--port",
                str(port),
                "--wsdl",
                str(WSDL),
                "--data",
                str(data),
                "--aktenplan",
                "63 Bauordnung",
            ],
            cwd=ROOT,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        lines: Queue[str] = Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout
        self.reader = threading.Thread(
            target=lambda: [lines.put(line) for line in stdout], daemon=True
        )
        self.reader.start()
        self.facts: dict[str, str] = {}
        while "wsdl" not in self.facts:
            try:
                line = lines.get(timeout=30)
            except Empty:
                self.stop()
                raise AssertionError("dms-sim printed no wsdl line within 30 s") from None
            key, _, value = line.strip().partition(" ")
            self.facts[key] = value

    @property
    def url(self) -> str:
        """The simulator's base URL."""
        return self.facts["url"]

    def objects(self) -> list[dict[str, Any]]:
        """The control API's object listing."""
        with urllib.request.urlopen(self.url + "_control/objects", timeout=10) as response:
            listing: list[dict[str, Any]] = json.loads(response.read())
        return listing

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.reader.join(timeout=10)  # ends at EOF of the finished process
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    """The simulator process, stopped at the end."""
    process = SimProcess(tmp_path / "sim")
    yield process
    if process.process.poll() is None:
        process.stop()


CONFIG = """
[node]
id = "kommune-a"
behoerdenkennung = "060:0815"

[storage]
journal = "sqlite:///data/journal.db"
blobs = "data/blobs"

[http]
port = {port}

[destinations.dms]
type = "dms"
backend = "dmsin"
initial_backoff_seconds = 0.2
max_backoff_seconds = 1.0

[destinations.dms.dmsin]
wsdl = "{wsdl}"
userlogin = "svc-ikz-gateway"

[destinations.dms.aktenplan]
"63" = "{aktenplan}"

[[routes]]
empfaenger = "060:4711"
destination = "dms"
"""


def test_routed_abgabe_is_imported_into_the_dms(sim: SimProcess, tmp_path: Path) -> None:
    """send → journal → dms destination → dmsin → simulator → ``dms export``: same tree and bytes."""
    aktenplan_address, _, name = sim.facts["aktenplan"].partition(" ")
    assert name == "63 Bauordnung"
    gateway = GatewayProcess(home=tmp_path / "gw", port=free_port(), env=environment())
    gateway.write_config(
        CONFIG.format(port=gateway.port, wsdl=sim.facts["wsdl"], aktenplan=aktenplan_address)
    )
    akte, documents = demo_data.bauakte()
    xml = builders.build_abgabe_0401(
        "3.1.0", [akte], absender=demo_data.KOMMUNE_A, empfaenger=demo_data.KOMMUNE_B
    )
    container, entries = write_container(tmp_path / "outbox", xml, documents)
    hashes = {e.name: e.sha256 for e in entries if e.role == "primaerdokument"}

    check = subprocess.run(
        [sys.executable, "-m", "gateway", "config", "check", str(gateway.config)],
        cwd=ROOT,
        env=gateway.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    gateway.start()
    try:
        gateway.cli("send", str(container))
        wait_until(
            lambda: [v["state"] for v in gateway.status()] == ["delivered"],
            timeout=60,
            what="the Abgabe delivered into the DMS",
        )
    finally:
        assert gateway.stop() == 0
    assert sim.stop() == 0

    # Same port: the gateway's configuration names the simulator's WSDL URL.
    restarted = SimProcess(tmp_path / "sim", port=int(sim.url.rstrip("/").rsplit(":", 1)[1]))
    try:
        objects = restarted.objects()
        (akte_address,) = [o["address"] for o in objects if o["objclass"] == names.AKTE]
        exported = subprocess.run(
            [
                *(sys.executable, "-m", "gateway", "dms", "export", akte_address),
                *("--config", str(gateway.config), "--empfaenger", "060:4711"),
                *("--out", str(tmp_path / "export")),
            ],
            cwd=ROOT,
            env=gateway.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        restarted.stop()
    assert exported.returncode == 0, exported.stdout + exported.stderr
    (path,) = (tmp_path / "export").iterdir()
    report = read_container(path)
    assert report.valid, report.all_findings
    assert {e.name: e.sha256 for e in report.entries if e.role == "primaerdokument"} == hashes
    assert [xdomea_specs.shape(s) for s in report.nachricht.schriftgutobjekte] == list(
        xdomea_specs.expected([akte])
    )
    contents = {
        f"{o['fields']['filename']}.{o['fields']['fileextension']}": o["sha256"]
        for o in objects
        if o["objclass"] == names.INHALT
    }
    assert contents == hashes
    classes = sorted(o["objclass"] for o in objects if o["objclass"] != names.INHALT)
    assert classes == sorted(
        [names.AKTENPLANEINTRAG, names.AKTE, names.VORGANG, names.VORGANG]
        + [names.INTERN] * len(documents)
    )
