"""Aussonderung end to end: a real gateway, the dmsin simulator as DMS, the archive's part on files."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from adapters.xdomea import builders
from contracts.builders import ObjectResult
from gateway.aussonderung import kontakt
from tests.aussonderung_support import (
    ARCHIVE,
    NODE,
    ArchivePart,
    Seeded,
    akte,
    archive_running,
    digests,
    gateway_config,
    running_gateway,
    seed_dms,
)
from tests.delivery_support import eventually
from tests.dms_support import Sim, running_sim


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    """The dmsin simulator: this node's DMS."""
    async with running_sim(tmp_path / "sim") as running:
        yield running


async def _fachdaten(sim: Sim, adresse: str) -> dict[str, str]:
    objects = {o["address"]: o for o in await sim.objects()}
    return dict(objects[adresse]["userforms"])


async def test_four_stage_hands_over_only_the_akte_valued_a_bit_identical(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """The 0503 holds only the Akte valued A with its documents as the DMS holds them, and the process completes."""
    wertvoll, wertlos = akte("Bauakte"), akte("Altakte")
    seeded: Seeded = await seed_dms(sim, tmp_path, pdf_bytes, [wertvoll, wertlos])
    config = gateway_config(tmp_path, sim)
    part = ArchivePart(tmp_path / "transfer", bewerte=lambda u: "A" if u == wertvoll.uuid else "V")
    async with running_gateway(config) as gateway, archive_running(part):
        started = await gateway.start(
            [seeded.adressen[wertvoll.uuid], seeded.adressen[wertlos.uuid]]
        )
        status = await gateway.reaches(started.prozess_id, "completed")
    assert part.codes() == ["0501", "0505", "0503"]
    uebergabe = part.received[2]
    assert [o.uuid for o in uebergabe.nachricht.schriftgutobjekte] == [wertvoll.uuid]
    expected = {n: d for n, d in seeded.documents.items() if n in uebergabe.documents}
    assert len(expected) == 2
    assert digests(uebergabe.documents) == expected
    assert status.aussonderung is not None
    assert status.aussonderung.bewertungen == {wertvoll.uuid: "A", wertlos.uuid: "V"}
    assert {a.ergebnis for a in status.aussonderung.aktionen} == {"archiviert", "vernichten"}


async def test_two_stage_hands_over_every_akte_at_once_and_completes(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """A two-stage archive gets the 0503 straight away, every document bit-identical to the DMS."""
    erste, zweite = akte("Erste"), akte("Zweite", dokumente=1)
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [erste, zweite])
    config = gateway_config(tmp_path, sim, stages=2, version="3.1.0")
    part = ArchivePart(tmp_path / "transfer")
    async with running_gateway(config) as gateway, archive_running(part):
        started = await gateway.start(list(seeded.adressen.values()))
        status = await gateway.reaches(started.prozess_id, "completed")
    assert started.nachrichtentyp == "0503"
    assert part.codes() == ["0503"]
    assert digests(part.received[0].documents) == seeded.documents
    assert status.aussonderung is not None
    archived = {a.objekt: a for a in status.aussonderung.aktionen}
    assert set(archived) == {erste.uuid, zweite.uuid}
    fachdaten = await _fachdaten(sim, seeded.adressen[erste.uuid])
    assert fachdaten["archiv"] == f"ARCH-{erste.uuid[:8]}"


async def test_nothing_valued_a_ends_the_process_without_a_0503(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """A Bewertung with nothing A is confirmed, no 0503 follows, and the V action runs."""
    alt = akte("Altakte")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [alt])
    config = gateway_config(tmp_path, sim)
    part = ArchivePart(tmp_path / "transfer", bewerte=lambda _u: "V")
    async with running_gateway(config) as gateway, archive_running(part):
        started = await gateway.start([seeded.adressen[alt.uuid]])
        status = await gateway.reaches(started.prozess_id, "ended-without-archiving")
        await asyncio.sleep(0.3)  # time for a 0503 that must not come
    assert part.codes() == ["0501", "0505"]
    assert status.aussonderung is not None
    assert [(a.objekt, a.ergebnis) for a in status.aussonderung.aktionen] == [
        (alt.uuid, "vernichten")
    ]
    assert "offltscheduled" in await _fachdaten(sim, seeded.adressen[alt.uuid])


async def test_an_object_the_0506_reports_failed_gets_no_dms_action(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """The archived Akte is marked in the DMS; the one with a failed document is left alone."""
    gut, schlecht = akte("Gut"), akte("Schlecht")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [gut, schlecht])
    failed_document = schlecht.vorgaenge[0].dokumente[0].uuid
    config = gateway_config(tmp_path, sim)
    part = ArchivePart(
        tmp_path / "transfer",
        ergebnisse={failed_document: ObjectResult.failed("Formatvalidierung fehlgeschlagen")},
    )
    async with running_gateway(config) as gateway, archive_running(part):
        started = await gateway.start(list(seeded.adressen.values()))
        status = await gateway.reaches(started.prozess_id, "partially-archived")
    assert status.aussonderung is not None
    results = {r.objekt: r for r in status.aussonderung.ergebnisse}
    assert not results[failed_document].erfolgreich
    actions = {a.objekt: a for a in status.aussonderung.aktionen}
    assert actions[gut.uuid].ergebnis == "archiviert"
    assert actions[schlecht.uuid].ergebnis == "nicht-archiviert"
    assert "Formatvalidierung" in (actions[schlecht.uuid].detail or "")
    assert "archiv" in await _fachdaten(sim, seeded.adressen[gut.uuid])
    assert "archiv" not in await _fachdaten(sim, seeded.adressen[schlecht.uuid])


async def test_an_archive_silent_past_its_deadline_flags_the_process_overdue(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """An offer nobody answers within answer_timeout_seconds is shown overdue."""
    stumm = akte("Stumm")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [stumm])
    config = gateway_config(tmp_path, sim, answer_timeout_seconds=0.2)
    part = ArchivePart(tmp_path / "transfer", answer=False)
    async with running_gateway(config) as gateway, archive_running(part):
        started = await gateway.start([seeded.adressen[stumm.uuid]])
        await gateway.reaches(started.prozess_id, "offered")

        async def overdue() -> bool:
            return (await gateway.status(started.prozess_id)).overdue

        await eventually(overdue, what="the process is overdue")
        status = await gateway.status(started.prozess_id)
    assert status.state.value == "offered"
    assert status.due_by is not None


async def test_a_schema_invalid_0502_is_refused_kept_and_does_not_advance_the_process(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """An invalid Bewertungsverzeichnis stays in the folder, is named as a problem, and nothing is sent."""
    akte_ = akte("Akte")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [akte_])
    config = gateway_config(tmp_path, sim)
    part = ArchivePart(tmp_path / "transfer", answer=False)
    async with running_gateway(config) as gateway, archive_running(part):
        started = await gateway.start([seeded.adressen[akte_.uuid]])
        await eventually(_async(lambda: part.codes() == ["0501"]), what="the 0501 arrived")
        valid = builders.build_bewertungsverzeichnis_0502(
            "3.0.0",
            {akte_.uuid: "A"},
            absender=kontakt(ARCHIVE),
            empfaenger=kontakt(NODE),
            prozess_id=started.prozess_id,
        )
        broken = valid.replace(f"<xdomea:ID>{akte_.uuid}</xdomea:ID>".encode(), b"")
        assert broken != valid
        path = part.write(started.prozess_id, "Aussonderung.Bewertungsverzeichnis.0502", broken)

        async def flagged() -> bool:
            details = (await gateway.status(started.prozess_id)).aussonderung
            return details is not None and bool(details.probleme)

        await eventually(flagged, what="the refused 0502 is named")
        await asyncio.sleep(0.3)  # further polls must not take it either
        status = await gateway.status(started.prozess_id)
    assert path.exists()
    assert status.state.value == "offered"
    assert status.aussonderung is not None
    assert "not valid xdomea" in status.aussonderung.probleme[0]
    assert part.codes() == ["0501"]


async def test_a_0502_valuing_an_object_not_offered_is_refused_with_the_reason(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """A Bewertung of a foreign object dead-letters with what is wrong; no 0505 or 0503 goes out."""
    akte_ = akte("Akte")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [akte_])
    config = gateway_config(tmp_path, sim)
    part = ArchivePart(tmp_path / "transfer", answer=False)
    stranger = str(uuid.uuid4())
    async with running_gateway(config) as gateway, archive_running(part):
        started = await gateway.start([seeded.adressen[akte_.uuid]])
        await eventually(_async(lambda: part.codes() == ["0501"]), what="the 0501 arrived")
        part.write(
            started.prozess_id,
            "Aussonderung.Bewertungsverzeichnis.0502",
            builders.build_bewertungsverzeichnis_0502(
                "3.0.0",
                {akte_.uuid: "A", stranger: "A"},
                absender=kontakt(ARCHIVE),
                empfaenger=kontakt(NODE),
                prozess_id=started.prozess_id,
            ),
        )
        status = await gateway.reaches(started.prozess_id, "valuation-refused")
        await asyncio.sleep(0.3)
    assert status.aussonderung is not None
    assert any(stranger in p and "did not offer" in p for p in status.aussonderung.probleme)
    assert part.codes() == ["0501"]


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()

    return wrapped
