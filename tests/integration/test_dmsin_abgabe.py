"""The dmsin port against the simulator: a refused document, and the Abgabevermerk.

The simulator refuses one document's ``CreateContentObjectGI`` with a SOAP Sender
fault (fault kind ``refuse`` matched on its file name), as a DMS whose virus
scanner or format check rejects it would; the Abgabevermerk is written and read
back as a Fachdatum (``UpdateUserFormsDataGI``/``ReadUserFormsDataGI``), validated by the
simulator against the WSDL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from adapters.dms import dmsin_names as names
from adapters.dms.dmsin import DmsinPort
from contracts.dms import Abgabevermerk
from gateway import abgabe
from gateway.blobs import BlobStore
from tests.delivery_support import outbound
from tests.dms_support import (
    container,
    dmsin_config,
    dmsin_destination,
    kleine_akte,
    running_sim,
)


async def test_document_the_dms_refuses_is_reported_and_the_rest_is_filed(
    tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A Sender fault for one document's content: a failure in the result, not a dead letter."""
    sent = container(tmp_path / "out", [kleine_akte()], pdf_bytes)
    refused = next(name for name in sent.documents if name.endswith("vermerk.pdf"))
    blobs = BlobStore(tmp_path / "blobs")
    async with running_sim(tmp_path / "sim") as sim:
        await sim.fault(
            operation="CreateContentObjectGI",
            kind="refuse",
            match=refused.rsplit(".", 1)[0],
            message="Virenscanner: Datei abgelehnt",
        )
        destination = dmsin_destination(sim)
        try:
            result = await destination.deliver(
                await outbound(blobs, sent.data, prozess_id=sent.prozess_id)
            )
        finally:
            await destination.close()
        contents = [o for o in await sim.objects() if o["objclass"] == names.INHALT]
        stored = {f"{o['fields']['filename']}.{o['fields']['fileextension']}" for o in contents}
    blobs.close()

    [failure] = result.objects.values()
    assert not failure.erfolgreich
    assert refused in failure.fehlermeldungen[0] and "Virenscanner" in failure.fehlermeldungen[0]
    assert stored == set(sent.documents) - {refused}


async def test_abgabevermerk_is_written_as_a_fachdatum_and_read_back(
    tmp_path: Path, pdf_bytes: bytes
) -> None:
    """The completion's write sets the Fachdatum; the same note again leaves one note."""
    sent = container(tmp_path / "out", [kleine_akte()], pdf_bytes)
    blobs = BlobStore(tmp_path / "blobs")
    vermerk = Abgabevermerk(
        empfaenger="060:4711",
        partner="kommune-b",
        prozess_id=sent.prozess_id,
        abgegeben_am=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        importbestaetigung="0402-id",
    )
    async with running_sim(tmp_path / "sim") as sim:
        destination = dmsin_destination(sim)
        port = DmsinPort(dmsin_config(sim))
        try:
            ergebnis = await destination.import_message(
                await outbound(blobs, sent.data, prozess_id=sent.prozess_id)
            )
            # The Akte is the first object the import filed.
            akte = next(iter(ergebnis.adressen.values()))
            before = await abgabe.read_vermerk(port, akte, "xdomea_abgabe")
            for _ in range(2):
                await port.write_fachdaten(akte, {"xdomea_abgabe": vermerk.model_dump_json()})
            after = await abgabe.read_vermerk(port, akte, "xdomea_abgabe")
        finally:
            await destination.close()
            await port.close()
        [objekt] = [o for o in await sim.objects() if o["address"] == akte]
    blobs.close()

    assert before is None and after == vermerk
    assert Abgabevermerk.model_validate_json(objekt["userforms"]["xdomea_abgabe"]) == vermerk
