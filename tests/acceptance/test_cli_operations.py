"""config check, send and status as an operator runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from adapters.xdomea import builders
from adapters.xdomea.container import write_container
from gateway import demo_data

CONFIG = """
[node]
id = "kommune-a"
behoerdenkennung = "060:0815"

[storage]
journal = "sqlite:///data/journal.db"
blobs = "data/blobs"

[destinations.out]
type = "filesystem"
directory = "out"

[[routes]]
empfaenger = "060:4711"
destination = "out"
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=120
    )


def test_config_check_explains_an_invalid_file_and_exits_1(tmp_path: Path) -> None:
    """An unknown destination in a route is named with the file and key."""
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG.replace('destination = "out"', 'destination = "dms"'))

    result = run("config", "check", str(config))

    assert result.returncode == 1
    assert "routes[0] names destination 'dms', which is not configured" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_send_journals_a_container_and_status_shows_it(tmp_path: Path) -> None:
    """A container sent as the node itself is accepted once and listed with its delivery."""
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG)
    akte, documents = demo_data.bauakte()
    xml = builders.build_abgabe_0401(
        "3.1.0", [akte], absender=demo_data.KOMMUNE_A, empfaenger=demo_data.KOMMUNE_B
    )
    container, _ = write_container(tmp_path / "outbox", xml, documents)

    first = run("send", str(container), "--config", str(config))
    again = run("send", str(container), "--config", str(config))
    status = run("status", "--config", str(config))

    assert first.returncode == 0 and "accepted as message" in first.stdout
    assert "already accepted before" in again.stdout
    assert status.stdout.count("Abgabe.Abgabe.0401") == 1
    assert "-> out" in status.stdout and "pending" in status.stdout


def test_send_refuses_a_message_from_someone_else_with_the_reason(tmp_path: Path) -> None:
    """Sending a message whose Absender is another agency is refused, exit 1, nothing kept."""
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG)
    akte, _ = demo_data.bauakte()
    xml = builders.build_abgabe_0401(
        "3.1.0", [akte], absender=demo_data.KOMMUNE_B, empfaenger=demo_data.KOMMUNE_A
    )
    message = tmp_path / "foreign.xml"
    message.write_bytes(xml)

    result = run("send", str(message), "--config", str(config))

    assert result.returncode == 1
    assert "REFUSED" in result.stdout and "only send as its own Behördenkennung" in result.stdout
    assert list((tmp_path / "data" / "blobs" / "tmp").iterdir()) == []
