"""The agency's side of an Aussonderung at the file level, against the archive over WebDAV.

What the gateway's Aussonderung engine does with these pieces, without the
engine: upload through a ``WebDavTransferFolder``, wait for the archive's
answers with ``poll_ready``, read them, answer, and compare what the archive
kept with what was sent.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.archive.sim import ArchiveSimConfig
from adapters.transfer.folders import open_folder
from adapters.transfer.polling import poll_ready
from adapters.xdomea import builders, naming
from adapters.xdomea.container import write_container
from adapters.xdomea.files import FileCheck, Verdict, check_file
from adapters.xdomea.receipts import build_receipt, read_import_results
from contracts.builders import AkteSpec
from contracts.transfer import TransferFolder
from contracts.xdomea import MessageType
from gateway.dev_archive import WebDavArchive, webdav_archive
from tests.integration.test_archive_sim import (
    AKTE_1,
    AKTE_2,
    DOK_1,
    DOK_2,
    DOK_3,
    PROZESS,
    VORGANG,
    _akten,
    _documents,
)
from tests.xdomea_specs import ABSENDER, EMPFAENGER

TIMEOUT = 30.0


@pytest.fixture
async def archive(tmp_path: Path) -> AsyncIterator[WebDavArchive]:
    """The archive over WebDAV, valuing the second Akte V."""
    config = ArchiveSimConfig(
        settle_seconds=0.2, poll_interval_seconds=0.05, bewertungen={AKTE_2: "V"}
    )
    async with webdav_archive(tmp_path / "share", tmp_path / "archiv", config) as running:
        yield running


@pytest.fixture
async def agency(archive: WebDavArchive) -> AsyncIterator[TransferFolder]:
    """The agency's own client of the share, configured as its gateway would be."""
    folder = open_folder(archive.folder)
    yield folder
    await folder.close()


async def _send(
    folder: TransferFolder, tmp_path: Path, xml: bytes, documents: dict[str, bytes]
) -> None:
    """Upload one message as a container in x-man's naming."""
    out = tmp_path / f"send-{hashlib.sha256(xml).hexdigest()[:8]}"
    if documents:
        path, _ = write_container(out, xml, documents)
    else:
        out.mkdir()
        typ = MessageType.from_element(_element(xml))
        path = out / naming.container_name(PROZESS, typ)
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(naming.message_name(PROZESS, typ), xml)
    await folder.upload(
        "to_archive", path.name, path, hashlib.sha256(path.read_bytes()).hexdigest()
    )


def _element(xml: bytes) -> str:
    from lxml import etree

    return etree.QName(etree.fromstring(xml)).localname


async def _receive(folder: TransferFolder, tmp_path: Path, codes: set[str]) -> dict[str, FileCheck]:
    """Wait for the archive's answers with these codes; download, check and remove each."""
    found: dict[str, FileCheck] = {}
    async for entry in poll_ready(folder, "from_archive", interval=0.05, settle_seconds=0.1):
        parsed = naming.parse_name(entry.name)
        assert parsed is not None and parsed.code in codes, entry.name
        target = tmp_path / "received" / entry.name
        target.parent.mkdir(exist_ok=True)
        await folder.download("from_archive", entry.name, target)
        found[parsed.code] = check_file(target)
        await folder.remove("from_archive", entry.name)
        if set(found) == codes:
            return found
    raise AssertionError("unreachable")  # pragma: no cover


def _valued_a(akten: tuple[AkteSpec, ...], bewertungen: dict[str, str]) -> tuple[AkteSpec, ...]:
    return tuple(a for a in akten if bewertungen.get(a.uuid) == "A")


async def test_four_stage_exchange_over_webdav_archives_only_what_was_valued_a(
    archive: WebDavArchive, agency: TransferFolder, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """0501 → 0504 + 0502, 0505 and a 0503 of the A objects → 0507 + 0506, documents identical."""
    offer = builders.build_anbieteverzeichnis_0501(
        "3.1.0", _akten(), absender=ABSENDER, empfaenger=EMPFAENGER, prozess_id=PROZESS
    )
    await _send(agency, tmp_path, offer, {})
    answers = await _receive(agency, tmp_path, {"0504", "0502"})
    assert all(a.verdict is Verdict.VALID for a in answers.values())
    bewertungsverzeichnis = answers["0502"].checked
    assert bewertungsverzeichnis is not None
    bewertungen = archive.simulator.processes[PROZESS].bewertungen
    assert bewertungen == {AKTE_1: "A", AKTE_2: "V"}

    await _send(agency, tmp_path, build_receipt(bewertungsverzeichnis, "0505"), {})
    chosen = _valued_a(_akten(), bewertungen)
    documents = {k: v for k, v in _documents(pdf_bytes).items() if DOK_3 not in k}
    aussonderung = builders.build_aussonderung_0503(
        "3.1.0", chosen, absender=ABSENDER, empfaenger=EMPFAENGER, prozess_id=PROZESS
    )
    await _send(agency, tmp_path, aussonderung, documents)
    answers = await _receive(agency, tmp_path, {"0507", "0506"})
    assert all(a.verdict is Verdict.VALID for a in answers.values())
    importbestaetigung = answers["0506"].checked
    assert importbestaetigung is not None
    results = read_import_results(importbestaetigung)
    assert set(results.objekte) == {AKTE_1, VORGANG, DOK_1, DOK_2}
    assert results.erfolgreich

    process = archive.simulator.processes[PROZESS]
    # 0505 and 0503 may wait in the folder together; the archive takes them in name order.
    assert sorted(process.received) == ["0501", "0503", "0505"]
    for document in process.archived:
        assert (
            archive.simulator.document_path(document.sha256).read_bytes()
            == documents[document.dateiname]
        )
    assert {d.dateiname for d in process.archived} == set(documents)


async def test_two_stage_exchange_over_webdav_gets_0507_and_0506_for_a_0503_at_once(
    archive: WebDavArchive, agency: TransferFolder, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Without an offer the archive takes every object of the 0503."""
    aussonderung = builders.build_aussonderung_0503(
        "3.1.0", _akten(), absender=ABSENDER, empfaenger=EMPFAENGER, prozess_id=PROZESS
    )
    await _send(agency, tmp_path, aussonderung, _documents(pdf_bytes))
    answers = await _receive(agency, tmp_path, {"0507", "0506"})
    importbestaetigung = answers["0506"].checked
    assert importbestaetigung is not None
    results = read_import_results(importbestaetigung)
    assert results.erfolgreich and len(results.objekte) == 6
    assert len(archive.simulator.processes[PROZESS].archived) == 3
