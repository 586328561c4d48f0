"""Two real gateways on loopback: Kommune A delivers to Kommune B's HTTP API.

Both run as ``python -m gateway serve`` subprocesses with SQLite journals in the
test's folder. A routes Empfänger 060:4711 to B's ``/v1/messages``; B files what
it accepts from kommune-a into its transfer directory.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.xdomea import builders
from adapters.xdomea.container import read_container, write_container
from gateway import demo_data
from tests.acceptance.processes import (
    GatewayProcess,
    environment,
    free_port,
    http_post,
    token_digest,
    wait_until,
)
from tests.intake_support import KOMMUNE_C, NOBODY, bare_message

TOKEN_A_TO_B = "token-kommune-a-to-kommune-b"
TOKEN_ENV = "IKZ_TEST_TOKEN_A_TO_B"
TOKEN_C = "token-kommune-c-to-kommune-a"

pytestmark = pytest.mark.slow


def config_a(home: Path, port: int, b_port: int) -> str:
    """Kommune A: partner kommune-c may send; 060:4711 goes to B over HTTP."""
    return f"""
[node]
id = "kommune-a"
behoerdenkennung = "060:0815"

[storage]
journal = "sqlite:///{home / "data" / "journal.db"}"
blobs = "{home / "data" / "blobs"}"

[http]
port = {port}

[worker]
lease_seconds = 5
poll_interval_seconds = 0.1

[[partners]]
id = "kommune-c"
behoerdenkennung = "060:1234"
token_sha256 = "{token_digest(TOKEN_C)}"

[destinations.kommune-b]
type = "http"
url = "http://127.0.0.1:{b_port}/v1/messages"
token_env = "{TOKEN_ENV}"
initial_backoff_seconds = 0.2
max_backoff_seconds = 0.5
max_attempts = 1000
timeout_seconds = 20

[[routes]]
empfaenger = "060:4711"
destination = "kommune-b"
"""


def config_b(home: Path, port: int, token: str) -> str:
    """Kommune B: accepts kommune-a with ``token``; files into ``transfer/``."""
    return f"""
[node]
id = "kommune-b"
behoerdenkennung = "060:4711"

[storage]
journal = "sqlite:///{home / "data" / "journal.db"}"
blobs = "{home / "data" / "blobs"}"

[http]
port = {port}

[worker]
poll_interval_seconds = 0.1

[[partners]]
id = "kommune-a"
behoerdenkennung = "060:0815"
token_sha256 = "{token_digest(token)}"

[destinations.dms]
type = "filesystem"
directory = "{home / "transfer"}"
initial_backoff_seconds = 0.2
max_backoff_seconds = 0.5

[[routes]]
empfaenger = "060:4711"
destination = "dms"
"""


@dataclass
class Pair:
    """Kommune A and Kommune B, configured but not started."""

    a: GatewayProcess
    b: GatewayProcess

    def configure_b(self, token: str) -> None:
        """(Re)write B's config accepting kommune-a with ``token``; create its transfer folder."""
        self.transfer.mkdir(parents=True, exist_ok=True)
        self.b.write_config(config_b(self.b.home, self.b.port, token))

    @property
    def transfer(self) -> Path:
        """B's transfer directory."""
        return self.b.home / "transfer"

    def arrived(self) -> list[Path]:
        """Containers B has filed (finished files only)."""
        if not self.transfer.is_dir():
            return []
        return sorted(p for p in self.transfer.iterdir() if p.suffix == ".zip")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """Two configured gateways; both are killed at the end whatever happened."""
    env = environment(**{TOKEN_ENV: TOKEN_A_TO_B})
    a_port, b_port = free_port(), free_port()
    a = GatewayProcess(home=tmp_path / "a", port=a_port, env=env)
    b = GatewayProcess(home=tmp_path / "b", port=b_port, env=env)
    a.write_config(config_a(a.home, a_port, b_port))
    both = Pair(a, b)
    both.configure_b(TOKEN_A_TO_B)
    yield both
    a.kill()
    b.kill()


def abgabe_container(folder: Path) -> tuple[Path, dict[str, str]]:
    """An Abgabe container from A to B with the demo Bauakte; the SHA-256 of each document."""
    akte, documents = demo_data.bauakte()
    xml = builders.build_abgabe_0401(
        "3.1.0",
        [akte],
        absender=demo_data.KOMMUNE_A,
        empfaenger=demo_data.KOMMUNE_B,
        prozess_id=str(uuid.uuid4()),
    )
    path, _ = write_container(folder, xml, documents)
    return path, {name: hashlib.sha256(data).hexdigest() for name, data in documents.items()}


def send(gateway: GatewayProcess, path: Path) -> str:
    """``ikz-gateway send PATH``; the id of the accepted message."""
    output = gateway.cli("send", str(path)).stdout
    found = re.search(r"accepted as message (\S+)", output)
    assert found, output
    return found.group(1)


def message_view(gateway: GatewayProcess, message_id: str) -> dict[str, object]:
    """The message's view from ``status --json``."""
    for view in gateway.status():
        if view["id"] == message_id:
            return view
    raise AssertionError(f"message {message_id} not in {gateway.home}'s journal")


def check_documents(delivered: Path, originals: dict[str, str]) -> None:
    """Every original document is in the delivered container with the same SHA-256."""
    report = read_container(delivered)
    assert report.valid
    received = {e.name: e.sha256 for e in report.entries if e.role == "primaerdokument"}
    assert received == originals


def test_container_sent_to_a_arrives_bit_identical_at_b(pair: Pair, tmp_path: Path) -> None:
    """A container handed to A with ``send`` lands in B's transfer directory unchanged."""
    pair.b.start()
    pair.a.start()
    path, originals = abgabe_container(tmp_path / "outbox")

    message_id = send(pair.a, path)

    wait_until(lambda: bool(pair.arrived()), timeout=30, what="the container at B")
    [delivered] = pair.arrived()
    check_documents(delivered, originals)
    assert delivered.read_bytes() == path.read_bytes()
    wait_until(
        lambda: message_view(pair.a, message_id)["state"] == "delivered",
        timeout=30,
        what="A to record the delivery",
    )
    assert not list(pair.transfer.glob("*.part")) and not list(pair.transfer.glob(".*"))


def test_b_down_for_a_while_then_the_message_arrives(pair: Pair, tmp_path: Path) -> None:
    """While B is down A keeps the message pending with a last error, and delivers once B is up."""
    pair.a.start()
    path, originals = abgabe_container(tmp_path / "outbox")
    message_id = send(pair.a, path)

    def retrying() -> bool:
        view = message_view(pair.a, message_id)
        deliveries = view["deliveries"]
        assert isinstance(deliveries, list)
        [delivery] = deliveries
        return bool(delivery["attempts"] >= 2 and delivery["last_error"])

    wait_until(retrying, timeout=30, what="A to retry")
    view = message_view(pair.a, message_id)
    assert view["state"] == "accepted"
    assert isinstance(view["deliveries"], list)
    assert view["deliveries"][0]["state"] in ("pending", "claimed")
    assert not pair.arrived()

    pair.b.start()

    wait_until(lambda: bool(pair.arrived()), timeout=30, what="the container at B")
    check_documents(pair.arrived()[0], originals)
    wait_until(
        lambda: message_view(pair.a, message_id)["state"] == "delivered",
        timeout=30,
        what="A to record the delivery",
    )


def test_unknown_empfaenger_is_rejected_at_intake_and_not_queued(pair: Pair) -> None:
    """A message to an Empfänger no route knows gets 422 at A's API and leaves no journal row."""
    pair.a.start()
    body = bare_message(absender=KOMMUNE_C, empfaenger=NOBODY)

    status, problem = http_post(f"{pair.a.url}/v1/messages", body, token=TOKEN_C)

    assert status == 422, problem
    assert pair.a.status() == []


def test_dead_letter_then_replay_after_fixing_the_token(pair: Pair, tmp_path: Path) -> None:
    """B refuses A's token (401), A dead-letters at once; with B fixed, ``retry`` delivers."""
    pair.configure_b("a-token-kommune-a-does-not-have")
    pair.b.start()
    pair.a.start()
    path, originals = abgabe_container(tmp_path / "outbox")
    message_id = send(pair.a, path)

    wait_until(
        lambda: message_view(pair.a, message_id)["state"] == "dead",
        timeout=30,
        what="A to dead-letter",
    )
    dead = pair.a.cli("dead-letters", "--json").stdout
    assert message_id in dead and "401" in dead
    assert not pair.arrived()

    assert pair.b.stop() == 0
    pair.configure_b(TOKEN_A_TO_B)
    pair.b.start()
    retried = pair.a.cli("retry", message_id)
    assert "requeued 1" in retried.stdout

    wait_until(lambda: bool(pair.arrived()), timeout=30, what="the container at B")
    check_documents(pair.arrived()[0], originals)
    wait_until(
        lambda: message_view(pair.a, message_id)["state"] == "delivered",
        timeout=30,
        what="A to record the delivery",
    )
