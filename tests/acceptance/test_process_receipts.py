"""Two real gateways answer and track an Abgabe: B produces 0403/0402, A shows the process.

A sends a 0401 (with Empfangsbestaetigung) through its gateway to B's; B files it
into its filesystem DMS (a ``dms`` destination), answers with the receipts through
its own intake and routes them back to A, whose inbox is a transfer folder. Both
gateways are ``serve`` subprocesses on 127.0.0.1 with SQLite journals.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.xdomea import builders
from adapters.xdomea.container import write_container
from gateway import demo_data
from tests.acceptance.processes import (
    GatewayProcess,
    environment,
    free_port,
    http_post,
    token_digest,
    wait_until,
)
from tests.acceptance.test_two_gateways import send

TOKEN_A_TO_B = "token-a-to-b"
TOKEN_B_TO_A = "token-b-to-a"

pytestmark = pytest.mark.slow


def _common(home: Path, port: int) -> str:
    return f"""
[storage]
journal = "sqlite:///{home / "data" / "journal.db"}"
blobs = "{home / "data" / "blobs"}"

[http]
port = {port}

[worker]
lease_seconds = 5
poll_interval_seconds = 0.1
"""


def _peer(name: str, port: int, token: str, kennung: str) -> str:
    return f"""
[destinations.{name}]
type = "http"
url = "http://127.0.0.1:{port}/v1/messages"
token_env = "IKZ_TEST_{token.upper().replace("-", "_")}"
initial_backoff_seconds = 0.2
max_backoff_seconds = 0.5
max_attempts = 1000

[[routes]]
empfaenger = "{kennung}"
destination = "{name}"
"""


def config_a(a: GatewayProcess, b_port: int, *, timeout: float = 3600) -> str:
    """A: sends 060:4711 to B, keeps what is addressed to itself in its inbox."""
    return f"""
[node]
id = "kommune-a"
behoerdenkennung = "060:0815"
{_common(a.home, a.port)}
[processes]
receipt_timeout_seconds = {timeout}

[[partners]]
id = "kommune-b"
behoerdenkennung = "060:4711"
token_sha256 = "{token_digest(TOKEN_B_TO_A)}"

[destinations.inbox]
type = "filesystem"
directory = "{a.home / "inbox"}"

[[routes]]
empfaenger = "060:0815"
destination = "inbox"
{_peer("kommune-b", b_port, TOKEN_A_TO_B, "060:4711")}
"""


def config_b(b: GatewayProcess, a_port: int, *, route_to_a: bool = True) -> str:
    """B: imports into its filesystem DMS; answers A through A's gateway."""
    return f"""
[node]
id = "kommune-b"
behoerdenkennung = "060:4711"
{_common(b.home, b.port)}
[[partners]]
id = "kommune-a"
behoerdenkennung = "060:0815"
token_sha256 = "{token_digest(TOKEN_A_TO_B)}"

[destinations.dms]
type = "dms"
backend = "filesystem"
directory = "{b.home / "dms"}"
initial_backoff_seconds = 0.2
max_backoff_seconds = 0.5

[[routes]]
empfaenger = "060:4711"
destination = "dms"
{_peer("kommune-a", a_port, TOKEN_B_TO_A, "060:0815") if route_to_a else ""}
"""


class Pair:
    """Kommune A and B, configured; started by the tests."""

    def __init__(self, tmp_path: Path) -> None:
        env = environment(IKZ_TEST_TOKEN_A_TO_B=TOKEN_A_TO_B, IKZ_TEST_TOKEN_B_TO_A=TOKEN_B_TO_A)
        self.a = GatewayProcess(home=tmp_path / "a", port=free_port(), env=env)
        self.b = GatewayProcess(home=tmp_path / "b", port=free_port(), env=env)
        self.a.write_config(config_a(self.a, self.b.port))
        self.b.write_config(config_b(self.b, self.a.port))
        (self.a.home / "inbox").mkdir(parents=True)
        (self.b.home / "dms").mkdir(parents=True)

    def process(self, prozess_id: str) -> dict[str, Any]:
        """``ikz-gateway process show ID --json`` on A."""
        shown: dict[str, Any] = json.loads(
            self.a.cli("process", "show", prozess_id, "--json").stdout
        )
        return shown

    def process_api(self, prozess_id: str) -> dict[str, Any]:
        """``GET /v1/processes/ID`` on A, as partner kommune-b sees it."""
        import urllib.request

        request = urllib.request.Request(
            f"{self.a.url}/v1/processes/{prozess_id}",
            headers={"Authorization": f"Bearer {TOKEN_B_TO_A}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """Two configured gateways; both are killed at the end whatever happened."""
    both = Pair(tmp_path)
    yield both
    both.a.kill()
    both.b.kill()


def abgabe(folder: Path) -> tuple[Path, str]:
    """A 0401 container from A to B asking for the 0403; its path and ProzessID."""
    akte, documents = demo_data.bauakte()
    prozess_id = str(uuid.uuid4())
    xml = builders.build_abgabe_0401(
        "3.1.0",
        [akte],
        absender=demo_data.KOMMUNE_A,
        empfaenger=demo_data.KOMMUNE_B,
        prozess_id=prozess_id,
        empfangsbestaetigung=True,
    )
    path, _ = write_container(folder, xml, documents)
    return path, prozess_id


def codes(gateway: GatewayProcess, prozess_id: str) -> list[str]:
    """Nachrichtentyp of every message of the process in ``gateway``'s journal, in order."""
    with sqlite3.connect(gateway.home / "data" / "journal.db") as db:
        rows = db.execute(
            "SELECT nachrichtentyp FROM messages WHERE prozess_id = ? ORDER BY received_at",
            (prozess_id,),
        ).fetchall()
    return [row[0] for row in rows]


def test_b_answers_with_0403_and_0402_and_a_shows_the_process_completed(
    pair: Pair, tmp_path: Path
) -> None:
    """B produces both receipts by itself; A's process ends ``completed`` with a timeline."""
    pair.b.start()
    pair.a.start()
    path, prozess_id = abgabe(tmp_path / "outbox")

    send(pair.a, path)

    wait_until(
        lambda: pair.process(prozess_id)["state"] == "completed", timeout=60, what="completed"
    )
    shown = pair.process(prozess_id)
    assert [e["nachrichtentyp"] for e in shown["timeline"]] == ["0401", "0403", "0402"]
    assert all(len(e["sha256"]) == 64 for e in shown["timeline"])
    assert shown["failures"] == [] and shown["overdue"] is False
    assert pair.process_api(prozess_id)["state"] == "completed"
    assert sorted(p.name.split("_", 1)[1] for p in (pair.a.home / "inbox").iterdir()) == [
        "Abgabe.EmpfangBestaetigen.0403.xml",
        "Abgabe.ImportBestaetigen.0402.xml",
    ]


def test_receipt_owed_before_a_kill_9_is_produced_after_the_restart(
    pair: Pair, tmp_path: Path
) -> None:
    """B killed (-9) after accepting the 0401 but before its 0403 left still sends it later."""
    # Without a route to A, B accepts the 0401 but cannot produce the receipt yet.
    pair.b.write_config(config_b(pair.b, pair.a.port, route_to_a=False))
    pair.b.start()
    pair.a.start()
    path, prozess_id = abgabe(tmp_path / "outbox")
    send(pair.a, path)
    wait_until(lambda: codes(pair.b, prozess_id) == ["0401"], timeout=30, what="0401 at B")
    pair.b.kill()
    assert codes(pair.b, prozess_id) == ["0401"]  # the 0403 does not exist anywhere yet

    pair.b.write_config(config_b(pair.b, pair.a.port))
    pair.b.start()

    wait_until(lambda: "0403" in codes(pair.a, prozess_id), timeout=60, what="the 0403 at A")
    wait_until(
        lambda: pair.process(prozess_id)["state"] == "completed", timeout=60, what="completed"
    )


def test_replayed_0401_does_not_produce_a_second_set_of_receipts(
    pair: Pair, tmp_path: Path
) -> None:
    """The same 0401 posted again to B is a duplicate: B owes and sends its receipts once."""
    pair.b.start()
    pair.a.start()
    path, prozess_id = abgabe(tmp_path / "outbox")
    send(pair.a, path)
    wait_until(
        lambda: pair.process(prozess_id)["state"] == "completed", timeout=60, what="completed"
    )

    status, answer = http_post(
        f"{pair.b.url}/v1/messages",
        path.read_bytes(),
        token=TOKEN_A_TO_B,
        content_type="application/zip",
    )
    assert status == 200, answer

    pair.b.stop()  # lets anything still in flight finish before counting
    assert codes(pair.b, prozess_id) == ["0401", "0403", "0402"]
    assert sorted(codes(pair.a, prozess_id)) == ["0401", "0402", "0403"]


def test_process_without_receipts_past_the_timeout_is_overdue(pair: Pair, tmp_path: Path) -> None:
    """B accepts but cannot answer; after ``receipt_timeout_seconds`` A flags ``overdue``."""
    pair.a.write_config(config_a(pair.a, pair.b.port, timeout=1))
    pair.b.write_config(config_b(pair.b, pair.a.port, route_to_a=False))
    pair.b.start()
    pair.a.start()
    path, prozess_id = abgabe(tmp_path / "outbox")
    send(pair.a, path)
    wait_until(lambda: pair.process(prozess_id)["state"] == "sent", timeout=30, what="sent")

    wait_until(lambda: pair.process(prozess_id)["overdue"], timeout=10, what="overdue")
    assert pair.process_api(prozess_id)["overdue"] is True
    assert "OVERDUE" in pair.a.cli("process", "show", prozess_id).stdout
