"""``ikz-gateway abgabe start`` as an operator runs it: what it prints, and its exit codes.

Kommune A's own DMS is the filesystem DMS (or, for the outage, a dmsin service
nobody answers at); the Akte is filed into it before, by the dms import. No
``serve`` runs: the command only journals the 0401, which a gateway delivers later.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from adapters.dms.destination import DmsImport
from contracts.config import DmsDestination
from gateway.blobs import BlobStore
from tests.acceptance.processes import GatewayProcess, environment, free_port
from tests.delivery_support import outbound
from tests.dms_support import container, kleine_akte


def config(home: Path, dms: str) -> str:
    """Kommune A with its own DMS, partner B and a route for B."""
    return f"""
[node]
id = "kommune-a"
behoerdenkennung = "060:0815"

[storage]
journal = "sqlite:///{home / "journal.db"}"
blobs = "{home / "blobs"}"

[http]
public_url = "https://gateway.adorf.example:8443"

{dms}

[[partners]]
id = "kommune-b"
behoerdenkennung = "060:4711"
token_sha256 = "{"0" * 64}"

[[partners]]
id = "kommune-c"
behoerdenkennung = "060:1234"
token_sha256 = "{"1" * 64}"

[destinations.kommune-b]
type = "filesystem"
directory = "{home / "to-b"}"

[[routes]]
empfaenger = "060:4711"
destination = "kommune-b"
"""


@pytest.fixture
def gateway(tmp_path: Path, pdf_bytes: bytes) -> tuple[GatewayProcess, str]:
    """A's configuration with ``kleine_akte`` in its filesystem DMS; the Akte's address."""
    home = tmp_path / "kommune-a"
    (home / "dms").mkdir(parents=True)
    (home / "to-b").mkdir()
    made = container(tmp_path / "seed", [kleine_akte()], pdf_bytes)

    async def seed() -> str:
        importer = DmsImport(
            "seed", DmsDestination(type="dms", backend="filesystem", directory=home / "dms")
        )
        blobs = BlobStore(tmp_path / "seed-blobs")
        ergebnis = await importer.import_message(
            await outbound(blobs, made.data, prozess_id=made.prozess_id)
        )
        blobs.close()
        return next(iter(ergebnis.adressen.values()))

    akte = asyncio.run(seed())
    process = GatewayProcess(home=home, port=free_port(), env=environment())
    process.write_config(config(home, f'[dms]\nbackend = "filesystem"\ndirectory = "{home}/dms"'))
    return process, akte


def test_abgabe_start_prints_message_prozess_id_and_status_url(
    gateway: tuple[GatewayProcess, str],
) -> None:
    """A started Abgabe: the 0401 is journaled to B, and the output says how to follow it."""
    process, akte = gateway

    done = process.cli("abgabe", "start", "--akte", akte, "--to", "kommune-b")

    assert f"Abgabe of {akte} to kommune-b started" in done.stdout
    [view] = process.status()
    assert (view["nachrichtentyp"], view["empfaenger"]) == ("0401", "060:4711")
    assert f"ProzessID  {view['prozess_id']}" in done.stdout
    assert (
        f"status     https://gateway.adorf.example:8443/v1/processes/{view['prozess_id']}"
        in done.stdout
    )


def test_abgabe_start_again_says_already_open(gateway: tuple[GatewayProcess, str]) -> None:
    """The second start of the same Akte to the same partner shows the open one (--json)."""
    process, akte = gateway
    first = json.loads(
        process.cli("abgabe", "start", "--akte", akte, "--to", "kommune-b", "--json").stdout
    )

    again = json.loads(
        process.cli("abgabe", "start", "--akte", akte, "--to", "060:4711", "--json").stdout
    )

    assert again["existing"] and again["message_id"] == first["message_id"]
    assert len(process.status()) == 1


@pytest.mark.parametrize(
    ("akte", "to", "exit_code", "says"),
    [
        ("no/such/akte", "kommune-b", 3, "cannot export 'no/such/akte' from the DMS"),
        (None, "kommune-x", 2, "'kommune-x' is not a partner of this gateway"),
        (None, "kommune-c", 2, "no route for a 0401 to kommune-c (060:1234)"),
    ],
)
def test_refused_abgabe_start_exits_with_its_code_and_journals_nothing(
    gateway: tuple[GatewayProcess, str], akte: str | None, to: str, exit_code: int, says: str
) -> None:
    """Unknown Akte (3), unknown partner (2), no route (2): one line on stderr, nothing kept."""
    process, seeded = gateway

    done = process.cli("abgabe", "start", "--akte", akte or seeded, "--to", to, check=False)

    assert done.returncode == exit_code
    assert says in done.stderr and done.stderr.startswith("NOT STARTED")
    assert "Traceback" not in done.stdout + done.stderr
    assert process.status() == []


def test_unreachable_dms_exits_4_and_journals_nothing(gateway: tuple[GatewayProcess, str]) -> None:
    """A dmsin DMS nobody answers at: exit 4, 'cannot be reached', nothing journaled."""
    process, akte = gateway
    dead = f"http://127.0.0.1:{free_port()}/"
    process.write_config(
        config(
            process.home,
            f'[dms]\nbackend = "dmsin"\n\n[dms.dmsin]\nwsdl = "{dead}?wsdl"\n'
            'userlogin = "svc"\nconnect_timeout_seconds = 1',
        )
    )

    done = process.cli("abgabe", "start", "--akte", akte, "--to", "kommune-b", check=False)

    assert done.returncode == 4, done.stdout + done.stderr
    assert "the DMS cannot be reached right now" in done.stderr
    assert process.status() == []
