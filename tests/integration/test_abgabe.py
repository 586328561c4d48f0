"""Abgabe start and completion at Kommune A: export from A's DMS, journal, close on the 0402.

A's gateway (060:0815) exports from its filesystem DMS (``[dms]``) and routes the
0401 to a transfer folder standing in for B; receipts addressed to A go to A's
inbox. B's 0402 is built with the project's receipt builder from the 0401 A
journaled and handed to A's intake as partner B would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.dms.destination import DmsImport, build_port
from adapters.dms.filesystem import FilesystemDms
from adapters.xdomea.receipts import build_receipt
from contracts.builders import ObjectResult
from contracts.config import DmsDestination, GatewayConfig
from contracts.dms import DmsPort
from contracts.processes import AbgabeState, CompletionState, ProcessState
from gateway import abgabe, processes
from gateway.api import create_api
from gateway.app import local_sender
from gateway.blobs import BlobStore
from gateway.config import token_digest
from gateway.errors import AbgabeError, TransientDeliveryError
from gateway.intake import Intake, Submission
from gateway.journal.store import Journal
from gateway.receipts import read_message
from tests.delivery_support import outbound
from tests.dms_support import container, kleine_akte
from tests.intake_support import bare_message, chunks_of

TOKEN_B = "b-token-only-kommune-b-knows-4711"
OPERATOR_TOKEN = "operator-token-of-kommune-a"
#: The Fachdatum the Abgabevermerk goes to (``[dms] abgabe_field``'s default).
FIELD = "xdomea_abgabe"


def config_a(tmp_path: Path, **processes: object) -> GatewayConfig:
    """Kommune A with a filesystem DMS, partner B, and routes to B and to its own inbox."""
    return GatewayConfig.model_validate(
        {
            "node": {"id": "kommune-a", "behoerdenkennung": "060:0815"},
            "storage": {
                "journal": f"sqlite:///{tmp_path / 'journal.db'}",
                "blobs": str(tmp_path / "blobs"),
            },
            "processes": {"on_completed": "mark-abgegeben", **processes},
            "dms": {"backend": "filesystem", "directory": str(tmp_path / "dms-a")},
            "operator": {"token_sha256": token_digest(OPERATOR_TOKEN)},
            "partners": [
                {
                    "id": "kommune-b",
                    "behoerdenkennung": "060:4711",
                    "token_sha256": token_digest(TOKEN_B),
                },
                {
                    "id": "kommune-c",
                    "behoerdenkennung": "060:1234",
                    "token_sha256": token_digest("c"),
                },
            ],
            "destinations": {
                "kommune-b": {"type": "filesystem", "directory": str(tmp_path / "to-b")},
                "inbox": {"type": "filesystem", "directory": str(tmp_path / "inbox")},
            },
            "routes": [
                {"empfaenger": "060:4711", "destination": "kommune-b"},
                {"empfaenger": "060:0815", "destination": "inbox"},
            ],
        }
    )


@dataclass
class NodeA:
    """Kommune A's journal, intake and DMS, with the address of an Akte in its DMS."""

    config: GatewayConfig
    journal: Journal
    blobs: BlobStore
    intake: Intake
    dms: DmsPort
    akte: str
    documents: dict[str, str]

    async def start(self, akte: str | None = None, to: str = "kommune-b") -> abgabe.Started:
        """``abgabe start`` in this process."""
        return await abgabe.start(
            self.config,
            self.journal,
            self.intake,
            self.dms,
            local_sender(self.config),
            akte=akte or self.akte,
            to=to,
        )

    async def answer_0402(self, started: abgabe.Started, *, failed: str | None = None) -> None:
        """B's 0402 for the journaled 0401 (one object failed if ``failed``), into A's intake."""
        view = await self.journal.get_message(started.message_id)
        with ExitStack() as stack:
            incoming = read_message(await self.blobs.file(view.blob_sha256), None, stack)
            results = {failed: ObjectResult.failed("virus scanner")} if failed else None
            receipt = build_receipt(incoming, "0402", results=results)

        async def once() -> AsyncIterator[bytes]:
            yield receipt

        await self.intake.submit(
            once(), Submission(partner=self.config.partners[0], channel="http")
        )


@pytest.fixture
async def node(tmp_path: Path, pdf_bytes: bytes) -> AsyncIterator[NodeA]:
    """Kommune A with ``kleine_akte`` filed in its DMS."""
    for folder in ("dms-a", "to-b", "inbox"):
        (tmp_path / folder).mkdir()
    config = config_a(tmp_path)
    journal = Journal.from_url(config.storage.journal)
    await journal.upgrade()
    blobs = BlobStore(config.storage.blobs, inline=journal.inline_content)
    assert config.dms is not None
    dms = build_port(config.dms)
    seeded = container(tmp_path / "seed", [kleine_akte()], pdf_bytes)
    importer = DmsImport("seed", _as_destination(config))
    ergebnis = await importer.import_message(
        await outbound(BlobStore(tmp_path / "seed-blobs"), seeded.data, prozess_id="x")
    )
    akte = next(a for a in ergebnis.adressen.values() if "/" not in a)
    yield NodeA(config, journal, blobs, Intake(config, journal, blobs), dms, akte, seeded.documents)
    await dms.close()
    await journal.close()
    blobs.close()


def _as_destination(config: GatewayConfig) -> DmsDestination:
    assert config.dms is not None
    return DmsDestination(type="dms", backend="filesystem", directory=config.dms.directory)


async def test_start_journals_a_0401_of_the_akte_addressed_to_the_partner(node: NodeA) -> None:
    """The exported Akte is journaled as the node's 0401 to B with the reserved ProzessID."""
    started = await node.start()

    view = await node.journal.get_message(started.message_id)
    assert (view.nachrichtentyp, view.absender, view.empfaenger) == ("0401", "060:0815", "060:4711")
    assert view.prozess_id == started.abgabe.prozess_id and view.channel == "abgabe"
    assert started.abgabe.state is AbgabeState.OPEN and not started.existing
    with ExitStack() as stack:
        sent = read_message(await node.blobs.file(view.blob_sha256), None, stack).read()
    assert sorted(sent.dateinamen()) == sorted(node.documents)


async def test_starting_an_open_abgabe_again_returns_it_and_journals_nothing(
    node: NodeA,
) -> None:
    """A second start of the same Akte to the same partner answers the open Abgabe."""
    first = await node.start()

    again = await node.start(to="060:4711")  # the partner by its Behördenkennung

    assert again.existing and again.message_id == first.message_id
    assert len(await node.journal.list_messages()) == 1


async def test_interrupted_start_resumes_with_the_0401_it_journaled(node: NodeA) -> None:
    """A start that journaled its 0401 but died before noting it sends nothing twice."""
    first = await node.start()
    # As if the process had died between intake and ``abgabe_opened``.
    await node.journal._write(
        lambda conn: conn.exec_driver_sql(
            "UPDATE abgaben SET state = 'starting', message_id = NULL"
        )
    )

    again = await node.start()

    assert again.message_id == first.message_id
    assert len(await node.journal.list_messages()) == 1


@pytest.mark.parametrize(
    ("akte", "to", "kind", "exit_code"),
    [
        ("no/such/akte", "kommune-b", "unknown-akte", abgabe.EXIT_UNKNOWN_AKTE),
        (None, "kommune-x", "unknown-partner", abgabe.EXIT_CONFIG),
        (None, "kommune-c", "no-route", abgabe.EXIT_CONFIG),
    ],
)
async def test_refused_start_names_the_cause_and_journals_nothing(
    node: NodeA, akte: str | None, to: str, kind: str, exit_code: int
) -> None:
    """Unknown Akte, unknown partner, no route: a specific error and nothing kept."""
    with pytest.raises(AbgabeError) as refused:
        await node.start(akte=akte, to=to)

    assert (refused.value.kind, refused.value.exit_code) == (kind, exit_code)
    assert await node.journal.list_messages() == []
    assert await node.journal.abgaben_open() == []


async def test_unreachable_dms_is_its_own_error_and_a_later_start_works(
    node: NodeA, tmp_path: Path
) -> None:
    """A DMS folder that is not mounted: dms-unavailable; once back, the start succeeds."""
    (tmp_path / "dms-a").rename(tmp_path / "unmounted")
    with pytest.raises(AbgabeError) as refused:
        await node.start()
    assert (refused.value.kind, refused.value.exit_code) == (
        "dms-unavailable",
        abgabe.EXIT_DMS_UNAVAILABLE,
    )
    assert await node.journal.list_messages() == []

    (tmp_path / "unmounted").rename(tmp_path / "dms-a")
    assert not (await node.start()).existing


async def test_complete_0402_writes_the_abgabevermerk_once(node: NodeA) -> None:
    """A 0402 reporting everything imported: the Akte is marked abgegeben, the Abgabe completed."""
    started = await node.start()
    await node.answer_0402(started)
    runner = abgabe.CompletionRunner(node.config, node.journal, node.blobs, node.dms)

    assert await runner.run_once() == 1
    assert await runner.run_once() == 0

    vermerk = await abgabe.read_vermerk(node.dms, node.akte, FIELD)
    assert vermerk is not None and vermerk.prozess_id == started.abgabe.prozess_id
    assert vermerk.empfaenger == "060:4711" and vermerk.partner == "kommune-b"
    recorded = await node.journal.abgabe_for_process(started.abgabe.prozess_id)
    assert recorded is not None and recorded.state is AbgabeState.COMPLETED
    assert recorded.completion_state is CompletionState.DONE


async def test_completion_after_a_crash_writes_the_same_vermerk(node: NodeA) -> None:
    """Redoing the action (crash after the DMS call, before the journal noted it) changes nothing."""
    started = await node.start()
    await node.answer_0402(started)
    runner = abgabe.CompletionRunner(node.config, node.journal, node.blobs, node.dms)
    await runner.run_once()
    first = await abgabe.read_vermerk(node.dms, node.akte, FIELD)
    await node.journal._write(
        lambda conn: conn.exec_driver_sql("UPDATE abgaben SET state = 'open'")
    )

    await runner.run_once()

    assert await abgabe.read_vermerk(node.dms, node.akte, FIELD) == first


async def test_partial_import_marks_nothing_and_shows_partially_imported(node: NodeA) -> None:
    """A 0402 with a failed object: no Abgabevermerk, the Abgabe is partially imported."""
    started = await node.start()
    view = await node.journal.get_message(started.message_id)
    with ExitStack() as stack:
        sent = read_message(await node.blobs.file(view.blob_sha256), None, stack).read()
        dokument = next(o.uuid for o in sent.walk() if o.art.value == "Dokument")
    await node.answer_0402(started, failed=dokument)
    runner = abgabe.CompletionRunner(node.config, node.journal, node.blobs, node.dms)

    await runner.run_once()

    assert await abgabe.read_vermerk(node.dms, node.akte, FIELD) is None
    views = await node.journal.process(started.abgabe.prozess_id)
    status = await processes.status(
        node.config, node.journal, node.blobs, started.abgabe.prozess_id, views
    )
    assert status.state is ProcessState.PARTIALLY_IMPORTED
    assert status.abgabe is not None and status.abgabe.completion_state is CompletionState.NOT_DONE


async def test_record_only_completes_without_touching_the_dms(node: NodeA, tmp_path: Path) -> None:
    """``on_completed = "record"``: the Abgabe is completed, the Akte carries no note."""
    node.config = config_a(tmp_path, on_completed="record")
    started = await node.start()
    await node.answer_0402(started)

    await abgabe.CompletionRunner(node.config, node.journal, node.blobs, None).run_once()

    recorded = await node.journal.abgabe_for_process(started.abgabe.prozess_id)
    assert recorded is not None and recorded.state is AbgabeState.COMPLETED
    assert await abgabe.read_vermerk(FilesystemDms(tmp_path / "dms-a"), node.akte, FIELD) is None


# --------------------------------------------------------------------------- HTTP API


@pytest.fixture
async def client(node: NodeA) -> AsyncIterator[TestClient[object, object]]:
    """A's API with its DMS, on loopback."""
    app = create_api(node.config, node.journal, node.blobs, intake=node.intake, dms=node.dms)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def test_operator_starts_an_abgabe_over_http_and_follows_it(
    client: TestClient[object, object], node: NodeA
) -> None:
    """POST /v1/abgaben with the operator token: 202 with ProzessID and the process URL."""
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}

    response = await client.post(
        "/v1/abgaben", json={"akte": node.akte, "to": "kommune-b"}, headers=headers
    )
    answer = await response.json()
    again = await client.post(
        "/v1/abgaben", json={"akte": node.akte, "to": "kommune-b"}, headers=headers
    )

    assert response.status == 202 and answer["state"] == "open"
    assert answer["status_url"].endswith(f"/v1/processes/{answer['prozess_id']}")
    assert again.status == 200 and (await again.json())["message_id"] == answer["message_id"]
    process = await client.get(f"/v1/processes/{answer['prozess_id']}", headers=headers)
    body = await process.json()
    assert body["state"] == "accepted" and body["abgabe"]["akte"] == node.akte


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"Authorization": f"Bearer {TOKEN_B}"}, 403), ({}, 401)],
    ids=["partner-token", "no-token"],
)
async def test_only_the_operator_may_start_an_abgabe(
    client: TestClient[object, object], node: NodeA, headers: dict[str, str], status: int
) -> None:
    """A partner's token is refused 403, no token 401; nothing is exported."""
    response = await client.post(
        "/v1/abgaben", json={"akte": node.akte, "to": "kommune-b"}, headers=headers
    )

    assert response.status == status
    assert (await response.json())["status"] == status
    assert await node.journal.list_messages() == []


async def test_unknown_akte_over_http_is_a_problem_naming_it(
    client: TestClient[object, object], node: NodeA
) -> None:
    """An address with no Akte: 422 unknown-akte, naming the address."""
    response = await client.post(
        "/v1/abgaben",
        json={"akte": "no/such/akte", "to": "kommune-b"},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )

    problem = await response.json()
    assert response.status == 422 and problem["type"].endswith(":unknown-akte")
    assert "no/such/akte" in problem["detail"]


async def test_dms_down_at_completion_keeps_the_abgabe_open_until_it_is_back(
    node: NodeA, tmp_path: Path
) -> None:
    """The Abgabevermerk cannot be written while the DMS is away: retried later, done once."""
    started = await node.start()
    await node.answer_0402(started)
    runner = abgabe.CompletionRunner(node.config, node.journal, node.blobs, node.dms)
    (tmp_path / "dms-a").rename(tmp_path / "unmounted")

    with pytest.raises(TransientDeliveryError):
        await runner.run_once()
    still_open = [a.id for a in await node.journal.abgaben_open()]
    (tmp_path / "unmounted").rename(tmp_path / "dms-a")
    closed = await runner.run_once()

    assert still_open == [started.abgabe.id] and closed == 1
    assert await abgabe.read_vermerk(node.dms, node.akte, FIELD) is not None


class _CountingRunner(abgabe.CompletionRunner):
    """A completion runner that counts its rounds."""

    rounds = 0

    async def run_once(self) -> int:
        self.rounds += 1
        return await super().run_once()


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.02)


async def test_completion_runner_wakes_for_a_0402_not_for_other_traffic(node: NodeA) -> None:
    """With an Abgabe open, an unrelated message leaves the runner asleep; the 0402 wakes it."""
    started = await node.start()
    runner = _CountingRunner(node.config, node.journal, node.blobs, node.dms, poll_seconds=3600)
    waking = replace(
        node, intake=Intake(node.config, node.journal, node.blobs, on_accepted=runner.notify)
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await _until(lambda: runner.rounds == 1)
        await waking.intake.submit(
            chunks_of(bare_message()), Submission(partner=local_sender(node.config), channel="cli")
        )
        await asyncio.sleep(0.3)
        rounds_after_other_traffic = runner.rounds
        await waking.answer_0402(started)
        await _until(lambda: runner.rounds == 2)
    finally:
        stop.set()
        await task

    assert rounds_after_other_traffic == 1
    assert [a.id for a in await node.journal.abgaben_open()] == []
