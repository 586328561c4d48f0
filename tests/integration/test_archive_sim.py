"""The archive simulator answers like x-man on the file level, through a local folder and WebDAV."""

from __future__ import annotations

import asyncio
import hashlib
import zipfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from adapters.archive.sim import ArchiveSimConfig, ArchiveSimulator
from adapters.xdomea import builders, naming
from adapters.xdomea.container import write_container
from adapters.xdomea.files import FileCheck, Verdict, check_file
from adapters.xdomea.receipts import read_import_results
from adapters.xdomea.validation import check_message
from contracts.builders import AkteSpec, DokumentSpec, VorgangSpec, primaerdokument_name
from contracts.xdomea import MessageType
from tests.conftest import VERSIONS
from tests.transfer_support import KINDS, Share, dav_server, share
from tests.xdomea_specs import ABSENDER, EMPFAENGER

__all__ = ["dav_server"]

PROZESS = "6f1c2a4e-0b1d-4c55-9a3e-2d7f00c0ffee"
TIMEOUT = 30.0


def _akten() -> tuple[AkteSpec, AkteSpec]:
    """Two Akten: one with a Vorgang of two documents, one with a document of its own."""
    return (
        AkteSpec(
            uuid="11111111-1111-4111-8111-111111111111",
            betreff="Bauakte Musterstraße 1",
            vorgaenge=(
                VorgangSpec(
                    uuid="22222222-2222-4222-8222-222222222222",
                    betreff="Genehmigung",
                    dokumente=(
                        DokumentSpec.with_file(
                            primaerdokument_name(
                                "antrag.pdf", "33333333-3333-4333-8333-333333333333"
                            ),
                            uuid="33333333-3333-4333-8333-333333333333",
                        ),
                        DokumentSpec.with_file(
                            primaerdokument_name(
                                "bescheid.pdf", "44444444-4444-4444-8444-444444444444"
                            ),
                            uuid="44444444-4444-4444-8444-444444444444",
                        ),
                    ),
                ),
            ),
        ),
        AkteSpec(
            uuid="55555555-5555-4555-8555-555555555555",
            betreff="Gewerbeakte",
            dokumente=(
                DokumentSpec.with_file(
                    primaerdokument_name("anmeldung.pdf", "66666666-6666-4666-8666-666666666666"),
                    uuid="66666666-6666-4666-8666-666666666666",
                ),
            ),
        ),
    )


AKTE_1, VORGANG, DOK_1, DOK_2, AKTE_2, DOK_3 = (
    "11111111-1111-4111-8111-111111111111",
    "22222222-2222-4222-8222-222222222222",
    "33333333-3333-4333-8333-333333333333",
    "44444444-4444-4444-8444-444444444444",
    "55555555-5555-4555-8555-555555555555",
    "66666666-6666-4666-8666-666666666666",
)


def _documents(pdf_bytes: bytes) -> dict[str, bytes]:
    """Distinct contents per document, so a mix-up would show."""
    return {
        primaerdokument_name("antrag.pdf", DOK_1): pdf_bytes,
        primaerdokument_name("bescheid.pdf", DOK_2): pdf_bytes + b"\n%bescheid",
        primaerdokument_name("anmeldung.pdf", DOK_3): pdf_bytes + b"\n%anmeldung",
    }


async def _put(shared: Share, tmp_path: Path, xml: bytes, documents: Mapping[str, bytes]) -> str:
    """Write a message as the agency would (a container uploaded atomically); its file name."""
    out = tmp_path / f"out-{hashlib.sha256(xml).hexdigest()[:8]}"
    if documents:
        path, _ = write_container(out, xml, documents)
    else:
        # What the agency sends without documents (0501, 0505): the message alone, zipped.
        path = out / naming.container_name(PROZESS, _typ(xml))
        out.mkdir()
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(naming.message_name(PROZESS, _typ(xml)), xml)
    await shared.folder.upload(
        "to_archive", path.name, path, hashlib.sha256(path.read_bytes()).hexdigest()
    )
    return path.name


def _typ(xml: bytes) -> MessageType:
    return check_message(xml).detected.typ


def _offer(version: str = "3.1.0") -> bytes:
    return builders.build_anbieteverzeichnis_0501(
        version, _akten(), absender=ABSENDER, empfaenger=EMPFAENGER, prozess_id=PROZESS
    )


def _aussonderung(version: str = "3.1.0", akten: tuple[AkteSpec, ...] | None = None) -> bytes:
    return builders.build_aussonderung_0503(
        version,
        akten if akten is not None else _akten(),
        absender=ABSENDER,
        empfaenger=EMPFAENGER,
        prozess_id=PROZESS,
    )


def _answers(shared: Share) -> dict[str, FileCheck]:
    """Every answer file in from_archive, checked, by its Nachrichtentyp code."""
    found = {}
    for path in sorted((shared.root / "from_archive").iterdir()):
        parsed = naming.parse_name(path.name)
        assert parsed is not None, path.name
        found[parsed.code] = check_file(path)
    return found


@pytest.fixture(params=KINDS)
async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Share]:
    """A transfer folder with to_archive and from_archive, local and over WebDAV."""
    server = request.getfixturevalue("dav_server") if request.param == "webdav" else None
    async with share(request.param, tmp_path, server, ("to_archive", "from_archive")) as made:
        yield made


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Share]:
    """A local transfer folder, for behaviours that do not depend on the folder's kind."""
    async with share("local", tmp_path, None, ("to_archive", "from_archive")) as made:
        yield made


def _sim(shared: Share, tmp_path: Path, **config: object) -> ArchiveSimulator:
    values: dict[str, object] = {"settle_seconds": 0.0, "poll_interval_seconds": 0.05}
    values.update(config)
    return ArchiveSimulator(
        shared.folder, ArchiveSimConfig.model_validate(values), tmp_path / "archiv"
    )


async def _run_until(sim: ArchiveSimulator, codes: tuple[str, ...]) -> None:
    async with sim.running():
        await sim.wait_for(
            lambda s: PROZESS in s.processes and s.processes[PROZESS].sent_codes() == list(codes),
            TIMEOUT,
        )


# --------------------------------------------------------------------------- through both folders


async def test_offer_is_answered_with_0504_and_a_0502_valuing_every_akte_a(
    shared: Share, tmp_path: Path
) -> None:
    """A 0501 gets a valid 0504 and a valid 0502 in x-man's names; the 0501 is taken away."""
    await _put(shared, tmp_path, _offer(), {})
    sim = _sim(shared, tmp_path)
    await _run_until(sim, ("0504", "0502"))
    assert sorted(p.name for p in (shared.root / "from_archive").iterdir()) == [
        f"{PROZESS}_Aussonderung.AnbietungEmpfangBestaetigen.0504.zip",
        f"{PROZESS}_Aussonderung.Bewertungsverzeichnis.0502.zip",
    ]
    answers = _answers(shared)
    assert all(a.verdict is Verdict.VALID for a in answers.values()), answers
    assert sim.processes[PROZESS].bewertungen == {AKTE_1: "A", AKTE_2: "A"}
    assert list((shared.root / "to_archive").iterdir()) == []


async def test_aussonderung_is_answered_with_0507_and_a_0506_for_every_object(
    shared: Share, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A 0503 gets a 0507 and a 0506 reporting each Akte, Vorgang and Dokument as archived."""
    documents = _documents(pdf_bytes)
    await _put(shared, tmp_path, _aussonderung(), documents)
    sim = _sim(shared, tmp_path)
    await _run_until(sim, ("0507", "0506"))
    answers = _answers(shared)
    assert all(a.verdict is Verdict.VALID for a in answers.values()), answers
    assert answers["0507"].checked is not None
    checked = answers["0506"].checked
    assert checked is not None
    results = read_import_results(checked)
    assert set(results.objekte) == {AKTE_1, VORGANG, DOK_1, DOK_2, AKTE_2, DOK_3}
    assert all(r.erfolgreich and r.archivkennung for r in results.objekte.values())


async def test_archived_documents_are_kept_bit_identical(
    shared: Share, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Every primary document is in the archive's store under its SHA-256, byte for byte."""
    documents = _documents(pdf_bytes)
    await _put(shared, tmp_path, _aussonderung(), documents)
    sim = _sim(shared, tmp_path)
    await _run_until(sim, ("0507", "0506"))
    archived = {d.dateiname: d for d in sim.processes[PROZESS].archived}
    assert set(archived) == set(documents)
    for name, content in documents.items():
        assert archived[name].sha256 == hashlib.sha256(content).hexdigest()
        assert sim.document_path(archived[name].sha256).read_bytes() == content


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize("version", VERSIONS)
async def test_every_answer_is_schema_valid_in_every_version(
    local: Share, tmp_path: Path, pdf_bytes: bytes, version: str
) -> None:
    """Four-stage answers in 2.3.0–3.1.0 validate; 2.x has no 0507 and answers without one."""
    await _put(local, tmp_path, _offer(version), {})
    sim = _sim(local, tmp_path)
    await _run_until(sim, ("0504", "0502"))
    await _put(local, tmp_path, _aussonderung(version), _documents(pdf_bytes))
    expected = ("0504", "0502", "0507", "0506") if version >= "3" else ("0504", "0502", "0506")
    await _run_until(sim, expected)
    answers = _answers(local)
    assert sorted(answers) == sorted(expected)
    for code, answer in answers.items():
        assert answer.verdict is Verdict.VALID, (code, answer.findings, answer.error)
        assert answer.checked is not None and answer.checked.detected.version == version


# --------------------------------------------------------------------------- policies and faults


async def test_everything_valued_v_gives_a_0502_without_any_a(local: Share, tmp_path: Path) -> None:
    """Policy bewertung = V: every offered Akte is to be destroyed."""
    await _put(local, tmp_path, _offer(), {})
    sim = _sim(local, tmp_path, bewertung="V")
    await _run_until(sim, ("0504", "0502"))
    assert sim.processes[PROZESS].bewertungen == {AKTE_1: "V", AKTE_2: "V"}
    assert _answers(local)["0502"].verdict is Verdict.VALID


async def test_per_object_valuation_is_written_as_given(local: Share, tmp_path: Path) -> None:
    """A mapping values one Akte A and the other V (UUIDs matched regardless of case)."""
    await _put(local, tmp_path, _offer(), {})
    sim = _sim(local, tmp_path, bewertungen={AKTE_2.upper(): "V"})
    await _run_until(sim, ("0504", "0502"))
    assert sim.processes[PROZESS].bewertungen == {AKTE_1: "A", AKTE_2: "V"}


async def test_a_0503_with_an_object_not_valued_a_fails_that_object(
    local: Share, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Like x-man, the archive refuses what its 0502 did not value A, with its children."""
    await _put(local, tmp_path, _offer(), {})
    sim = _sim(local, tmp_path, bewertungen={AKTE_2: "V"})
    await _run_until(sim, ("0504", "0502"))
    await _put(local, tmp_path, _aussonderung(), _documents(pdf_bytes))
    await _run_until(sim, ("0504", "0502", "0507", "0506"))
    results = sim.processes[PROZESS].results
    assert not results[AKTE_2].erfolgreich and not results[DOK_3].erfolgreich
    assert "archivwürdig" in results[AKTE_2].fehlermeldungen[0]
    assert all(results[u].erfolgreich for u in (AKTE_1, VORGANG, DOK_1, DOK_2))
    assert {d.objekt for d in sim.processes[PROZESS].archived} == {DOK_1, DOK_2}


async def test_injected_failure_is_reported_for_the_named_object_only(
    shared: Share, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """fail_objects makes the 0506 report those objects failed; their documents are not kept."""
    await _put(shared, tmp_path, _aussonderung(), _documents(pdf_bytes))
    sim = _sim(shared, tmp_path, fail_objects=[DOK_2])
    await _run_until(sim, ("0507", "0506"))
    checked = _answers(shared)["0506"].checked
    assert checked is not None
    results = read_import_results(checked)
    assert not results.objekte[DOK_2].erfolgreich
    assert results.objekte[DOK_2].fehlermeldungen
    assert all(r.erfolgreich for u, r in results.objekte.items() if u != DOK_2)
    assert DOK_2 not in {d.objekt for d in sim.processes[PROZESS].archived}


async def test_malformed_0502_schema_mode_writes_a_0502_the_xsd_refuses(
    local: Share, tmp_path: Path
) -> None:
    """malformed_0502 = schema: well-formed, but a BewertetesObjekt lacks its ID."""
    await _put(local, tmp_path, _offer(), {})
    sim = _sim(local, tmp_path, malformed_0502="schema")
    await _run_until(sim, ("0504", "0502"))
    answer = _answers(local)["0502"]
    assert answer.verdict is Verdict.INVALID
    assert any("ID" in f.message for f in answer.findings)


async def test_malformed_0502_xml_mode_writes_a_0502_that_is_not_xml(
    local: Share, tmp_path: Path
) -> None:
    """malformed_0502 = xml: the message is cut off and cannot be parsed."""
    await _put(local, tmp_path, _offer(), {})
    sim = _sim(local, tmp_path, malformed_0502="xml")
    await _run_until(sim, ("0504", "0502"))
    answer = _answers(local)["0502"]
    assert answer.verdict is Verdict.UNUSABLE
    assert answer.error is not None and answer.error.kind == "malformed-xml"


# --------------------------------------------------------------------------- files


async def test_an_invalid_message_is_rejected_and_not_answered(
    local: Share, tmp_path: Path
) -> None:
    """A 0501 the XSD refuses is recorded with the reason and gets no answer."""
    invalid = (
        _offer()
        .replace(b"<xdomea:ProzessID>", b"<xdomea:ProzessIDX>", 1)
        .replace(b"</xdomea:ProzessID>", b"</xdomea:ProzessIDX>", 1)
    )
    name = f"{PROZESS}_Aussonderung.Anbieteverzeichnis.0501.xml"
    (local.root / "to_archive" / name).write_bytes(invalid)
    sim = _sim(local, tmp_path)
    async with sim.running():
        await sim.wait_for(lambda s: bool(s.rejected), TIMEOUT)
    assert sim.rejected[0].name == name and "invalid" in sim.rejected[0].reason
    assert list((local.root / "from_archive").iterdir()) == []


async def test_a_bare_xml_0501_is_read_like_a_container(local: Share, tmp_path: Path) -> None:
    """x-man also accepts the message XML alone."""
    (local.root / "to_archive" / f"{PROZESS}_Aussonderung.Anbieteverzeichnis.0501.xml").write_bytes(
        _offer()
    )
    sim = _sim(local, tmp_path)
    await _run_until(sim, ("0504", "0502"))


async def test_a_file_of_another_kind_is_rejected(local: Share, tmp_path: Path) -> None:
    """Only 0501, 0503 and 0505 are for the archive; anything else is recorded and left alone."""
    (local.root / "to_archive" / "notes.txt").write_bytes(b"hello")
    sim = _sim(local, tmp_path, remove_processed=False)
    async with sim.running():
        await sim.wait_for(lambda s: bool(s.rejected), TIMEOUT)
    assert sim.rejected[0].name == "notes.txt"
    assert (local.root / "to_archive" / "notes.txt").exists()


async def test_processed_files_stay_when_removal_is_off_and_are_answered_once(
    local: Share, tmp_path: Path
) -> None:
    """remove_processed = false leaves the 0501 in place without answering it again."""
    name = await _put(local, tmp_path, _offer(), {})
    sim = _sim(local, tmp_path, remove_processed=False)
    async with sim.running():
        await sim.wait_for(
            lambda s: PROZESS in s.processes and len(s.processes[PROZESS].sent) == 2, TIMEOUT
        )
        # Several more polls of the unchanged file.
        for _ in range(5):
            await sim.folder.list("to_archive")
    assert (local.root / "to_archive" / name).exists()
    assert sim.processes[PROZESS].received == ["0501"]


async def test_answers_follow_the_configured_naming_style(local: Share, tmp_path: Path) -> None:
    """An archive that names its files short writes <ProzessID>_0502.zip."""
    await _put(local, tmp_path, _offer(), {})
    sim = _sim(local, tmp_path, naming="short")
    await _run_until(sim, ("0504", "0502"))
    assert sorted(p.name for p in (local.root / "from_archive").iterdir()) == [
        f"{PROZESS}_0502.zip",
        f"{PROZESS}_0504.zip",
    ]


async def test_the_agencys_0505_is_recorded(local: Share, tmp_path: Path) -> None:
    """The agency's BewertungEmpfangBestaetigen is read and validated, with no answer."""
    await _put(local, tmp_path, _offer(), {})
    sim = _sim(local, tmp_path)
    await _run_until(sim, ("0504", "0502"))
    bewertung = _answers(local)["0502"].checked
    assert bewertung is not None
    from adapters.xdomea.receipts import build_receipt

    receipt = build_receipt(bewertung, "0505")
    (
        local.root / "to_archive" / f"{PROZESS}_Aussonderung.BewertungEmpfangBestaetigen.0505.xml"
    ).write_bytes(receipt)
    async with sim.running():
        await sim.wait_for(lambda s: s.processes[PROZESS].received == ["0501", "0505"], TIMEOUT)
    assert sim.processes[PROZESS].sent_codes() == ["0504", "0502"]


async def test_a_file_still_growing_under_its_final_name_is_not_read_until_it_rests(
    shared: Share, tmp_path: Path
) -> None:
    """A writer appending to the final name is waited for; the finished file is answered."""
    xml = _offer()
    target = shared.root / "to_archive" / f"{PROZESS}_Aussonderung.Anbieteverzeichnis.0501.xml"
    sim = _sim(shared, tmp_path, settle_seconds=1.5)
    async with sim.running():
        # Append a slice every 0.1 s: the file never rests for 1.5 s until it is complete.
        step = len(xml) // 8 + 1
        for offset in range(0, len(xml), step):
            with target.open("ab") as sink:
                sink.write(xml[offset : offset + step])
            await asyncio.sleep(0.1)
            assert sim.processes == {} and sim.rejected == []
        await sim.wait_for(
            lambda s: PROZESS in s.processes and len(s.processes[PROZESS].sent) == 2, TIMEOUT
        )
    assert sim.rejected == []
    assert sim.processes[PROZESS].sent_codes() == ["0504", "0502"]
