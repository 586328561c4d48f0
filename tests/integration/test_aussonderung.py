"""Aussonderung end to end: a real gateway, the dmsin simulator as its DMS, the x-man simulator.

The four- and two-stage processes run through a local folder and a WebDAV share;
the failure paths through a local folder.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from adapters.dms.dmsin import DmsinPort
from adapters.xdomea import builders
from adapters.xdomea.naming import NamingStyle
from gateway.app import JOURNAL
from gateway.aussonderung import kontakt
from gateway.dev_webdav import WebDavServer
from gateway.errors import (
    AussonderungRefused,
    JournalUnavailable,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from gateway.intake import IntakeOutbox
from tests.aussonderung_support import (
    ARCHIVE,
    NODE,
    akte,
    archive,
    gateway_config,
    running_gateway,
    seed_dms,
)
from tests.delivery_support import eventually
from tests.dms_support import Sim, dmsin_config, running_sim
from tests.transfer_support import KINDS, dav_server

__all__ = ["dav_server"]


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    """The dmsin simulator: this node's DMS."""
    async with running_sim(tmp_path / "sim") as running:
        yield running


async def _fachdaten(sim: Sim, adresse: str) -> dict[str, str]:
    objects = {o["address"]: o for o in await sim.objects()}
    return dict(objects[adresse]["userforms"])


@pytest.mark.parametrize("kind", KINDS)
async def test_four_stage_hands_over_only_the_akte_valued_a_bit_identical(
    kind: str, tmp_path: Path, sim: Sim, pdf_bytes: bytes, dav_server: WebDavServer
) -> None:
    """Only the Akte valued A goes to the archive, its documents as the DMS holds them; both DMS actions run."""
    wertvoll, wertlos = akte("Bauakte"), akte("Altakte")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [wertvoll, wertlos])
    async with archive(
        kind, tmp_path, dav_server, bewertungen={wertvoll.uuid: "A", wertlos.uuid: "V"}
    ) as share:
        config = gateway_config(tmp_path, sim, share)
        async with running_gateway(config) as gateway:
            started = await gateway.start(
                [seeded.adressen[wertvoll.uuid], seeded.adressen[wertlos.uuid]]
            )
            status = await gateway.reaches(started.prozess_id, "completed")
        assert share.received(started.prozess_id) == ["0501", "0505", "0503"]
        archived = share.archived_documents(started.prozess_id)
    expected = {
        n: d
        for n, d in seeded.documents.items()
        if any(
            dok.versionen[0].formate[0].dateiname == n for dok in wertvoll.vorgaenge[0].dokumente
        )
    }
    assert archived == expected
    assert status.aussonderung is not None
    assert status.aussonderung.bewertungen == {wertvoll.uuid: "A", wertlos.uuid: "V"}
    actions = {a.objekt: a for a in status.aussonderung.aktionen}
    assert actions[wertvoll.uuid].ergebnis == "archiviert"
    assert actions[wertlos.uuid].ergebnis == "vernichten"
    assert (await _fachdaten(sim, seeded.adressen[wertvoll.uuid]))["archiv"].startswith("SIM-")
    assert "offltscheduled" in await _fachdaten(sim, seeded.adressen[wertlos.uuid])


@pytest.mark.parametrize("version", ["2.3.0", "2.4.0"])
async def test_four_stage_completes_in_xdomea_2(
    version: str, tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """In 2.x (no 0507, one 0506 verdict for the whole message) the process completes as well."""
    wertvoll = akte("Bauakte")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [wertvoll])
    async with archive("local", tmp_path, None) as share:
        config = gateway_config(tmp_path, sim, share, version=version)
        async with running_gateway(config) as gateway:
            started = await gateway.start([seeded.adressen[wertvoll.uuid]])
            status = await gateway.reaches(started.prozess_id, "completed")
        assert share.received(started.prozess_id) == ["0501", "0505", "0503"]
        assert share.archived_documents(started.prozess_id) == seeded.documents
    assert status.aussonderung is not None
    assert [(a.objekt, a.ergebnis) for a in status.aussonderung.aktionen] == [
        (wertvoll.uuid, "archiviert")
    ]
    assert [e.nachrichtentyp for e in status.timeline] == [
        "0501",
        "0504",
        "0502",
        "0505",
        "0503",
        "0506",
    ]


@pytest.mark.parametrize("kind", KINDS)
async def test_two_stage_hands_over_every_akte_at_once_and_completes(
    kind: str, tmp_path: Path, sim: Sim, pdf_bytes: bytes, dav_server: WebDavServer
) -> None:
    """A two-stage archive gets the 0503 straight away, every document bit-identical to the DMS."""
    erste, zweite = akte("Erste"), akte("Zweite", dokumente=1)
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [erste, zweite])
    async with archive(kind, tmp_path, dav_server) as share:
        config = gateway_config(tmp_path, sim, share, stages=2, version="3.1.0")
        async with running_gateway(config) as gateway:
            started = await gateway.start(list(seeded.adressen.values()))
            status = await gateway.reaches(started.prozess_id, "completed")
        assert started.nachrichtentyp == "0503"
        assert share.received(started.prozess_id) == ["0503"]
        assert share.archived_documents(started.prozess_id) == seeded.documents
    assert status.aussonderung is not None
    assert {a.objekt: a.ergebnis for a in status.aussonderung.aktionen} == {
        erste.uuid: "archiviert",
        zweite.uuid: "archiviert",
    }


async def test_nothing_valued_a_ends_the_process_without_a_0503(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """A Bewertung with nothing A is confirmed, no 0503 follows, and the V action runs."""
    alt = akte("Altakte")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [alt])
    async with archive("local", tmp_path, None, bewertung="V") as share:
        config = gateway_config(tmp_path, sim, share)
        async with running_gateway(config) as gateway:
            started = await gateway.start([seeded.adressen[alt.uuid]])
            status = await gateway.reaches(started.prozess_id, "ended-without-archiving")
            await eventually(
                _async(lambda: share.received(started.prozess_id) == ["0501", "0505"]),
                what="the archive has the 0505",
            )
            await asyncio.sleep(0.3)  # time for a 0503 that must not come
        assert share.received(started.prozess_id) == ["0501", "0505"]
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
    async with archive("local", tmp_path, None, fail_objects=frozenset({failed_document})) as share:
        config = gateway_config(tmp_path, sim, share)
        async with running_gateway(config) as gateway:
            started = await gateway.start(list(seeded.adressen.values()))
            status = await gateway.reaches(started.prozess_id, "partially-archived")
    assert status.aussonderung is not None
    results = {r.objekt: r for r in status.aussonderung.ergebnisse}
    assert not results[failed_document].erfolgreich
    assert results[gut.uuid].erfolgreich
    actions = {a.objekt: a for a in status.aussonderung.aktionen}
    assert actions[gut.uuid].ergebnis == "archiviert"
    assert actions[schlecht.uuid].ergebnis == "nicht-archiviert"
    assert actions[schlecht.uuid].action == "none"
    assert "archiv" in await _fachdaten(sim, seeded.adressen[gut.uuid])
    assert "archiv" not in await _fachdaten(sim, seeded.adressen[schlecht.uuid])


async def test_an_archive_silent_past_its_deadline_flags_the_process_overdue(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """An offer nobody answers within answer_timeout_seconds is shown overdue."""
    stumm = akte("Stumm")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [stumm])
    async with archive("local", tmp_path, None, answering=False) as share:
        config = gateway_config(tmp_path, sim, share, answer_timeout_seconds=0.2)
        async with running_gateway(config) as gateway:
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
    async with archive("local", tmp_path, None, malformed_0502="schema") as share:
        config = gateway_config(tmp_path, sim, share)
        async with running_gateway(config) as gateway:
            started = await gateway.start([seeded.adressen[akte_.uuid]])

            async def flagged() -> bool:
                details = (await gateway.status(started.prozess_id)).aussonderung
                return details is not None and bool(details.probleme)

            await eventually(flagged, what="the refused 0502 is named")
            await asyncio.sleep(0.3)  # further polls must not take it either
            status = await gateway.status(started.prozess_id)
        kept = list((share.root / "from_archive").glob("*0502*"))
        assert share.received(started.prozess_id) == ["0501"]
    assert len(kept) == 1
    assert status.state.value == "offer-confirmed"
    assert status.aussonderung is not None
    assert len(status.aussonderung.probleme) == 1
    assert "not valid xdomea" in status.aussonderung.probleme[0]


async def test_a_0502_valuing_an_object_not_offered_is_refused_with_the_reason(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """A Bewertung of a foreign object dead-letters with what is wrong; no 0505 or 0503 goes out."""
    akte_ = akte("Akte")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [akte_])
    stranger = str(uuid.uuid4())
    async with archive("local", tmp_path, None, answering=False) as share:
        config = gateway_config(tmp_path, sim, share)
        async with running_gateway(config) as gateway:
            started = await gateway.start([seeded.adressen[akte_.uuid]])
            await gateway.reaches(started.prozess_id, "offered")
            share.write_answer(
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
        sent = sorted(p.name for p in (share.root / "to_archive").iterdir())
    assert status.aussonderung is not None
    assert any(stranger in p and "did not offer" in p for p in status.aussonderung.probleme)
    assert [n.split("_", 1)[1] for n in sent] == ["Aussonderung.Anbieteverzeichnis.0501.zip"]


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()

    return wrapped


async def test_a_crash_between_a_dms_action_and_its_record_neither_loses_nor_doubles_it(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When recording the first DMS action fails, the 0506 is taken again and each action is recorded once."""
    akte_ = akte("Akte")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [akte_])
    async with archive("local", tmp_path, None) as share:
        config = gateway_config(tmp_path, sim, share, stages=2)
        async with running_gateway(config) as gateway:
            journal = gateway.server.app[JOURNAL]
            real = journal.record_aussonderung
            failures: list[str] = []

            async def crash_once(prozess_id: str, key: str, kind: str, detail: str) -> bool:
                if key.startswith("action:") and not failures:
                    failures.append(key)
                    raise JournalUnavailable("journal database unavailable: simulated crash")
                return await real(prozess_id, key, kind, detail)

            monkeypatch.setattr(journal, "record_aussonderung", crash_once)
            started = await gateway.start([seeded.adressen[akte_.uuid]])
            status = await gateway.reaches(started.prozess_id, "completed")
            calls = [c for c in (await sim.calls())["calls"] if "UpdateUserFormsData" in str(c)]
    assert failures == [f"action:{akte_.uuid}"]
    assert status.aussonderung is not None
    assert [a.objekt for a in status.aussonderung.aktionen] == [akte_.uuid]
    assert len(calls) == 2  # the action ran again after the failed record: idempotent set
    assert (await _fachdaten(sim, seeded.adressen[akte_.uuid]))["archiv"].startswith("SIM-")


async def test_start_refuses_an_unknown_archive_and_journals_nothing(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """Naming an archive that is not configured is a clear error before anything is journaled."""
    akte_ = akte("Akte")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [akte_])
    async with (
        archive("local", tmp_path, None, answering=False) as share,
        running_gateway(gateway_config(tmp_path, sim, share)) as gateway,
    ):
        with pytest.raises(AussonderungRefused, match=r"no archive 'stadtarchiv'.*landesarchiv"):
            await gateway.start([seeded.adressen[akte_.uuid]], archive_name="stadtarchiv")
        assert await gateway.journaled() == 0


async def test_start_refuses_an_unknown_akte_and_journals_nothing(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """A DMS address that names no object is refused with the address; nothing is journaled."""
    await seed_dms(sim, tmp_path, pdf_bytes, [akte("Akte")])
    async with (
        archive("local", tmp_path, None, answering=False) as share,
        running_gateway(gateway_config(tmp_path, sim, share)) as gateway,
    ):
        with pytest.raises(PermanentDeliveryError, match=r"COO\.9\.9\.9"):
            await gateway.start(["COO.9.9.9"])
        assert await gateway.journaled() == 0


async def test_start_with_the_dms_unreachable_is_transient_and_journals_nothing(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """An unreachable DMS is reported as such (try again later); nothing is journaled."""
    akte_ = akte("Akte")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [akte_])
    async with (
        archive("local", tmp_path, None, answering=False) as share,
        running_gateway(gateway_config(tmp_path, sim, share)) as gateway,
    ):
        down = DmsinPort(dmsin_config(sim, endpoint="http://127.0.0.1:9/"))
        with pytest.raises(TransientDeliveryError):
            await gateway.start([seeded.adressen[akte_.uuid]], port=down)
        assert await gateway.journaled() == 0


async def test_start_refuses_akten_nested_deeper_than_the_archive_accepts(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """An Akte > Vorgang > Dokument tree is refused by an archive with max_depth 2; nothing is journaled."""
    akte_ = akte("Tief")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [akte_])
    async with archive("local", tmp_path, None, answering=False) as share:
        config = gateway_config(tmp_path, sim, share, max_depth=2)
        async with running_gateway(config) as gateway:
            with pytest.raises(AussonderungRefused, match=r"nested 3 levels.*at most 2"):
                await gateway.start([seeded.adressen[akte_.uuid]])
            assert await gateway.journaled() == 0


@pytest.mark.parametrize(("remove", "left"), [("after-journal", 0), ("never", 2)])
async def test_answer_files_are_removed_after_the_journal_commit_unless_configured_not_to(
    remove: str, left: int, tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """remove_answers decides whether the archive's answer files stay in its folder."""
    akte_ = akte("Akte")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [akte_])
    async with archive("local", tmp_path, None) as share:
        config = gateway_config(tmp_path, sim, share, stages=2, remove_answers=remove)
        async with running_gateway(config) as gateway:
            started = await gateway.start([seeded.adressen[akte_.uuid]])
            await gateway.reaches(started.prozess_id, "completed")
            await asyncio.sleep(0.3)  # later polls journal nothing twice
            journaled = await gateway.journaled()
        remaining = list((share.root / "from_archive").iterdir())
    # 0503 (two-stage), 0507 and 0506; the 0506 and 0507 each journaled once.
    assert journaled == 3
    assert len(remaining) == left


async def test_a_0502_taken_again_after_a_failure_journals_its_0505_and_0503_once(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answers are rebuilt byte for byte on redelivery, so intake keeps one 0505 and one 0503."""
    akte_ = akte("Akte")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [akte_])
    real = IntakeOutbox.submit
    failed: list[str] = []

    async def fail_first_0503(
        self: IntakeOutbox, body: bytes, *, idempotency_key: str, file_name: str
    ) -> str:
        if idempotency_key.endswith(":0503") and not failed:
            failed.append(idempotency_key)
            raise JournalUnavailable("journal database unavailable: simulated outage")
        return await real(self, body, idempotency_key=idempotency_key, file_name=file_name)

    monkeypatch.setattr(IntakeOutbox, "submit", fail_first_0503)
    async with archive("local", tmp_path, None) as share:
        config = gateway_config(tmp_path, sim, share)
        async with running_gateway(config) as gateway:
            started = await gateway.start([seeded.adressen[akte_.uuid]])
            status = await gateway.reaches(started.prozess_id, "completed")
        assert share.received(started.prozess_id) == ["0501", "0505", "0503"]
    assert len(failed) == 1
    codes = [entry.nachrichtentyp for entry in status.timeline]
    assert codes.count("0505") == 1 and codes.count("0503") == 1


async def test_answers_follow_the_naming_the_archive_uses_for_its_own_files(
    tmp_path: Path, sim: Sim, pdf_bytes: bytes
) -> None:
    """An archive writing short names gets the 0505 and 0503 in short names too."""
    akte_ = akte("Akte")
    seeded = await seed_dms(sim, tmp_path, pdf_bytes, [akte_])
    async with archive(
        "local", tmp_path, None, naming=NamingStyle.SHORT, remove_processed=False
    ) as share:
        config = gateway_config(tmp_path, sim, share)
        async with running_gateway(config) as gateway:
            started = await gateway.start([seeded.adressen[akte_.uuid]])
            await gateway.reaches(started.prozess_id, "completed")
        written = sorted(p.name for p in (share.root / "to_archive").iterdir())
    pid = started.prozess_id
    assert written == sorted(
        [f"{pid}_Aussonderung.Anbieteverzeichnis.0501.zip", f"{pid}_0505.zip", f"{pid}_0503.zip"]
    )
