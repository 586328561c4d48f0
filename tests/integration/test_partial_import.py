"""A document the DMS refuses: the import goes on, the 0402 reports it, A's process says so."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from adapters.dms.filesystem import FilesystemDms
from adapters.xdomea.container import Container
from adapters.xdomea.receipts import build_receipt
from contracts.dms import Inhalt, Opener
from contracts.processes import ProcessState
from gateway import processes
from gateway.blobs import BlobStore
from gateway.errors import ObjectRefused
from gateway.journal.store import Journal, utcnow
from tests.delivery_support import outbound, put_blob
from tests.dms_support import container, filesystem_destination, kleine_akte
from tests.integration.test_journal import claim_one, new_message


class RefusingDms(FilesystemDms):
    """The filesystem DMS, refusing the document whose file name contains ``refused``."""

    def __init__(self, root: Path, refused: str) -> None:
        super().__init__(root)
        self.refused = refused

    async def add_content(
        self, dokument: str, dateiname: str, open_source: Opener, sha256: str, size: int
    ) -> Inhalt:
        if self.refused in dateiname:
            raise ObjectRefused(f"{dateiname}: virus scanner refused the file")
        return await super().add_content(dokument, dateiname, open_source, sha256, size)


async def test_refused_document_yields_a_0402_failure_and_partially_imported(
    journal: Journal, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """B's DMS refuses one document; its 0402 names that Dokument and A shows the failure."""
    blobs = BlobStore(tmp_path / "blobs")
    sent = container(tmp_path / "out", [kleine_akte()], pdf_bytes)
    destination = filesystem_destination(tmp_path / "dms")
    destination.port = RefusingDms(tmp_path / "dms", refused="vermerk")
    item = await outbound(blobs, sent.data, prozess_id=sent.prozess_id)

    result = await destination.deliver(item)

    # B: the refused Dokument is the one failure; the 0402 built from it reports it.
    [(failed_uuid, failure)] = result.objects.items()
    assert not failure.erfolgreich and "vermerk" in failure.fehlermeldungen[0]
    with Container(item.blob_path) as opened:
        receipt = build_receipt(opened.report().checked, "0402", results=result.objects)

    # A: its 0401 went out, the 0402 came back; the process shows the failure.
    abgabe = await journal.accept(
        new_message(prozess_id=sent.prozess_id, blob_sha256=item.blob_sha256, channel="cli"),
        ["kommune-b"],
    )
    await journal.complete(await claim_one(journal), "w1")
    await journal.accept(
        new_message(
            prozess_id=sent.prozess_id,
            blob_sha256=await put_blob(blobs, receipt),
            content_kind="message",
            nachrichtentyp="0402",
            message_element="Abgabe.ImportBestaetigen.0402",
            absender="060:4711",
            empfaenger="060:0815",
            partner_id="kommune-b",
        ),
        ["inbox"],
    )
    status = processes.derive(
        sent.prozess_id,
        await journal.process(sent.prozess_id),
        own_kennung="060:0815",
        blobs=blobs,
        timeout=timedelta(hours=1),
        now=utcnow(),
    )
    assert abgabe.message_id == status.timeline[0].message_id
    assert status.state is ProcessState.PARTIALLY_IMPORTED
    assert [(f.objekt, f.fehlermeldungen) for f in status.failures] == [
        (failed_uuid, failure.fehlermeldungen)
    ]
    blobs.close()
