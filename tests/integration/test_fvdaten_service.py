"""FVDaten requests carried out on both DMS backends: the filesystem DMS and dmsin (simulator).

Each test builds a request with the project's builders, lets ``FVDatenService`` carry
it out on a real backend and reads the answer it returns; the dmsin backend talks
SOAP to the simulator on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.dms import mapping
from adapters.dms.dmsin import DmsinPort
from adapters.dms.filesystem import FilesystemDms
from adapters.fvdaten.service import DmsZiel, FVDatenService
from adapters.xdomea import fvdaten
from contracts.builders import DokumentSpec, FormatSpec, VersionSpec, primaerdokument_name
from contracts.dms import DmsPort
from gateway.errors import TransientDeliveryError
from tests import fvdaten_support as fv
from tests.dms_support import Sim, dmsin_config, running_sim

FV_KENNUNG = str(fv.FACHVERFAHREN.behoerdenkennung)


@dataclass
class Dms:
    """A backend under test and how to break it."""

    kind: str
    port: DmsPort
    service: FVDatenService
    root: Path | None = None
    sim: Sim | None = None

    async def break_down(self) -> None:
        """Make the DMS unavailable: unmount the folder, or make the simulator fail."""
        if self.root is not None:
            shutil.rmtree(self.root)
        else:
            assert self.sim is not None
            await self.sim.fault(operation="*", kind="fault", times=1000)


@pytest.fixture(params=["filesystem", "dmsin"])
async def dms(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Dms]:
    """The service over a fresh filesystem DMS or a fresh simulator."""
    if request.param == "filesystem":
        root = tmp_path / "dms"
        root.mkdir()
        port: DmsPort = FilesystemDms(root)
        aktenplan = mapping.Aktenplan({}, None)
        service = FVDatenService(port, DmsZiel("dms", aktenplan), fachverfahren=[FV_KENNUNG])
        yield Dms("filesystem", port, service, root=root)
        return
    async with running_sim(tmp_path / "sim") as sim:
        port = DmsinPort(dmsin_config(sim))
        aktenplan = mapping.Aktenplan({"63.01": sim.aktenplaneintrag}, None)
        try:
            service = FVDatenService(port, DmsZiel("dms", aktenplan), fachverfahren=[FV_KENNUNG])
            yield Dms("dmsin", port, service, sim=sim)
        finally:
            await port.close()


async def answer(
    dms: Dms, tmp_path: Path, xml: bytes, documents: dict[str, bytes] | None = None
) -> fvdaten.Antwort:
    """Carry out ``xml`` (with ``documents`` in its container) and return the answer."""
    work = tmp_path / "work"
    work.mkdir(parents=True, exist_ok=True)
    with fv.anfrage(tmp_path / "in", xml, documents) as anfrage:
        return await dms.service.answer(anfrage, work)


async def content_sha256(port: DmsPort, dokument: str, tmp_path: Path) -> dict[str, str]:
    """SHA-256 of every content object of ``dokument``, by file name."""
    objekt = await port.read(dokument)
    result = {}
    for inhalt in objekt.inhalte:
        target = tmp_path / "readback"
        result[inhalt.dateiname] = await port.read_content(inhalt, target)
    return result


async def created_akte(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> tuple[fvdaten.Antwort, dict[str, bytes], bytes]:
    """A 0604 with an Akte holding one Dokument, carried out; the answer, documents and request."""
    xml = fv.erstellen("3.1.0", fv.akte())
    documents = fv.documents_of(xml, pdf_bytes)
    return await answer(dms, tmp_path, xml, documents), documents, xml


# --------------------------------------------------------------------------- 0604


async def test_sgo_erstellen_files_the_akte_and_its_pdf_bit_identical(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A 0604 creates the Akte with its Dokument; the stored PDF has the sent SHA-256."""
    antwort, documents, _ = await created_akte(dms, tmp_path, pdf_bytes)

    akte = fv.akte()
    dokument_adresse = await dms.port.locate(akte.dokumente[0].uuid)
    assert antwort.erfolgreich
    assert antwort.codes() == (fvdaten.ERFOLG,)
    assert antwort.rueckgaben[0].idsgo == akte.uuid
    assert antwort.rueckgaben[0].ablageort == await dms.port.locate(akte.uuid)
    assert dokument_adresse is not None
    assert await content_sha256(dms.port, dokument_adresse, tmp_path) == {
        name: hashlib.sha256(data).hexdigest() for name, data in documents.items()
    }


async def test_sgo_erstellen_again_creates_nothing_twice_and_answers_the_same(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Carrying out the same 0604 again finds what the first run made: the same answer."""
    first, documents, xml = await created_akte(dms, tmp_path, pdf_bytes)

    second = await answer(dms, tmp_path / "again", xml, documents)

    assert second == first
    found = await dms.port.search("Lindenweg", limit=10)
    assert len(found) == 1


async def test_sgo_erstellen_into_an_unknown_container_is_answered_with_0604001(
    dms: Dms, tmp_path: Path
) -> None:
    """An IDContainer naming no object fails that object with 0604001 and creates nothing."""
    dokument = DokumentSpec(betreff="Vermerk ohne Datei")
    xml = fv.erstellen("3.1.0", dokument, id_container=fv.UUID)

    antwort = await answer(dms, tmp_path, xml)

    assert not antwort.erfolgreich
    assert antwort.meldungen[0].code == "0604001"
    assert antwort.rueckgaben[0].meldungen[0].code == "0604001"
    assert antwort.rueckgaben[0].feld == fvdaten.Feld(name="FachverfahrenObjektID", wert="FV-1")
    assert await dms.port.locate(dokument.uuid) is None


async def test_sgo_erstellen_files_a_dokument_into_an_existing_akte(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A Dokument with IDContainer = the Akte's UUID is created inside that Akte."""
    await created_akte(dms, tmp_path, pdf_bytes)
    akte = fv.akte()
    nachtrag = fv.dokument("nachtrag.pdf", betreff="Nachtrag")
    xml = fv.erstellen("3.1.0", nachtrag, id_container=akte.uuid)

    antwort = await answer(dms, tmp_path / "2", xml, fv.documents_of(xml, pdf_bytes))

    akte_adresse = await dms.port.locate(akte.uuid)
    assert akte_adresse is not None
    assert antwort.erfolgreich
    assert antwort.rueckgaben[0].ablageort in (await dms.port.read(akte_adresse)).kinder


async def test_sgo_erstellen_with_the_dms_down_raises_a_transient_error(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A 0604 while the DMS is down is not answered: the delivery is retried."""
    xml = fv.erstellen("3.1.0", fv.akte())
    await dms.break_down()

    with pytest.raises(TransientDeliveryError):
        await answer(dms, tmp_path, xml, fv.documents_of(xml, pdf_bytes))


async def test_2x_sgo_erstellen_is_carried_out(dms: Dms, tmp_path: Path, pdf_bytes: bytes) -> None:
    """An xdomea 2.4.0 0604 creates its Akte just the same."""
    xml = fv.erstellen("2.4.0", fv.akte())

    antwort = await answer(dms, tmp_path, xml, fv.documents_of(xml, pdf_bytes))

    assert antwort.erfolgreich
    assert await dms.port.locate(fv.akte().uuid) is not None


# --------------------------------------------------------------------------- 0602


async def test_sgo_ansehen_answers_where_the_object_is(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A 0602 for a filed object answers its DMS address as Ablageort."""
    await created_akte(dms, tmp_path, pdf_bytes)
    uuid = fv.akte().uuid

    antwort = await answer(dms, tmp_path, fvdaten.build_sgo_ansehen_0602("3.1.0", uuid, fv.kopf()))

    assert antwort.codes() == (fvdaten.ERFOLG,)
    assert antwort.rueckgaben[0].ablageort == await dms.port.locate(uuid)


async def test_sgo_ansehen_of_an_unknown_uuid_is_answered_with_0602001(
    dms: Dms, tmp_path: Path
) -> None:
    """A 0602 for a UUID the DMS does not know is answered with 0602001 and the reason."""
    antwort = await answer(dms, tmp_path, fv.REQUESTS["0602"]("3.1.0"))

    assert not antwort.erfolgreich
    assert [m.code for m in antwort.meldungen] == ["0602001", None]
    assert fv.UUID in (antwort.meldungen[1].text or "")


# --------------------------------------------------------------------------- 0625


async def test_systemstatus_answers_that_the_dms_is_available(dms: Dms, tmp_path: Path) -> None:
    """A 0625 for SystemstatusID 1 answers success and the status "verfügbar"."""
    antwort = await answer(dms, tmp_path, fv.REQUESTS["0625"]("3.1.0"))

    assert antwort.codes() == (fvdaten.ERFOLG,)
    assert antwort.rueckgaben[0].feld is not None
    assert antwort.rueckgaben[0].feld.wert == "verfügbar"


async def test_systemstatus_answers_0000001_when_the_dms_is_down(dms: Dms, tmp_path: Path) -> None:
    """A 0625 while the DMS is down is answered (not retried): 0000001, "nicht verfügbar"."""
    await dms.break_down()

    antwort = await answer(dms, tmp_path, fv.REQUESTS["0625"]("3.1.0"))

    assert antwort.meldungen[0].code == fvdaten.DMS_NICHT_VERFUEGBAR
    assert antwort.rueckgaben[0].feld is not None
    assert antwort.rueckgaben[0].feld.wert == "nicht verfügbar"


async def test_systemstatus_of_an_unknown_id_is_answered_with_0625001(
    dms: Dms, tmp_path: Path
) -> None:
    """A SystemstatusID other than 1 is answered with 0625001."""
    xml = fvdaten.build_systemstatus_abfragen_0625("3.1.0", 7, fv.kopf())

    antwort = await answer(dms, tmp_path, xml)

    assert antwort.meldungen[0].code == "0625001"


# --------------------------------------------------------------------------- 0631


async def test_primaerdokument_exportieren_hands_over_the_bytes(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A 0631 exports the Dokument's file bit-identical and names it as Ablageort."""
    _, documents, _ = await created_akte(dms, tmp_path, pdf_bytes)
    uuid = fv.akte().dokumente[0].uuid

    antwort = await answer(
        dms, tmp_path, fvdaten.build_primaerdokument_exportieren_0631("3.1.0", uuid, fv.kopf())
    )

    (name,) = documents
    assert antwort.erfolgreich
    assert [r.ablageort for r in antwort.rueckgaben] == [name]
    assert antwort.dateien[name].read_bytes() == documents[name]


async def test_primaerdokument_exportieren_picks_the_asked_version(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """With Versionsnummer only that version's files are exported; the latest by default."""
    v1, v2 = primaerdokument_name("v1.pdf"), primaerdokument_name("v2.pdf")
    dokument = DokumentSpec(
        betreff="Bescheid",
        versionen=(
            VersionSpec(nummer="1", formate=(FormatSpec(dateiname=v1),)),
            VersionSpec(nummer="2", formate=(FormatSpec(dateiname=v2),)),
        ),
    )
    xml = fv.erstellen("3.1.0", fv.akte().model_copy(update={"dokumente": (dokument,)}))
    await answer(dms, tmp_path, xml, fv.documents_of(xml, pdf_bytes))

    latest = await answer(
        dms,
        tmp_path / "a",
        fvdaten.build_primaerdokument_exportieren_0631("3.1.0", dokument.uuid, fv.kopf()),
    )
    first = await answer(
        dms,
        tmp_path / "b",
        fvdaten.build_primaerdokument_exportieren_0631(
            "3.1.0", dokument.uuid, fv.kopf(), versionsnummer="1"
        ),
    )
    unknown = await answer(
        dms,
        tmp_path / "c",
        fvdaten.build_primaerdokument_exportieren_0631(
            "3.1.0", dokument.uuid, fv.kopf(), versionsnummer="9"
        ),
    )

    assert list(latest.dateien) == [v2]
    assert list(first.dateien) == [v1]
    assert unknown.meldungen[0].code == "0631002"


async def test_primaerdokument_exportieren_of_an_akte_is_answered_with_0631001(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A 0631 naming an Akte, not a Dokument, is refused with 0631001."""
    await created_akte(dms, tmp_path, pdf_bytes)

    antwort = await answer(
        dms,
        tmp_path,
        fvdaten.build_primaerdokument_exportieren_0631("3.1.0", fv.akte().uuid, fv.kopf()),
    )

    assert antwort.meldungen[0].code == "0631001"
    assert antwort.dateien == {}


# --------------------------------------------------------------------------- 0608


async def test_sgo_suchen_finds_objects_by_betreff(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A 0608 lists each object whose Betreff contains the term, with UUID and address."""
    await created_akte(dms, tmp_path, pdf_bytes)

    antwort = await answer(
        dms, tmp_path, fvdaten.build_sgo_suchen_0608("3.1.0", "Lindenweg", fv.kopf())
    )

    akte = fv.akte()
    assert antwort.codes() == (fvdaten.ERFOLG,)
    assert [(r.idsgo, r.ablageort) for r in antwort.rueckgaben] == [
        (akte.uuid, await dms.port.locate(akte.uuid))
    ]


async def test_sgo_suchen_in_full_text_only_is_answered_with_0608001(
    dms: Dms, tmp_path: Path
) -> None:
    """Full-text search is not offered: Metadaten 0 is answered with 0608001."""
    xml = fvdaten.build_sgo_suchen_0608("3.1.0", "x", fv.kopf(), metadaten=False)

    antwort = await answer(dms, tmp_path, xml)

    assert antwort.meldungen[0].code == "0608001"


# --------------------------------------------------------------------------- 0609 / 0610


async def test_metadaten_are_created_then_updated(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A 0609 sets a new Metadatum, a 0610 changes it; the DMS keeps the new value."""
    await created_akte(dms, tmp_path, pdf_bytes)
    uuid = fv.akte().uuid
    feld = fvdaten.Feld(name="Bauvorhaben", wert="Carport", datentyp="001")

    anlegen = await answer(
        dms, tmp_path, fvdaten.build_metadaten_anlegen_0609("3.1.0", uuid, [feld], fv.kopf())
    )
    aendern = await answer(
        dms,
        tmp_path,
        fvdaten.build_metadaten_aktualisieren_0610(
            "3.1.0", uuid, [fvdaten.Feld(name="Bauvorhaben", wert="Garage")], fv.kopf()
        ),
    )

    adresse = await dms.port.locate(uuid)
    assert adresse is not None
    assert anlegen.codes() == (fvdaten.ERFOLG,)
    assert aendern.codes() == (fvdaten.ERFOLG,)
    assert await dms.port.read_fachdaten(adresse, ["Bauvorhaben"]) == {"Bauvorhaben": "Garage"}


async def test_metadaten_errors_carry_their_codes(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Updating a missing Metadatum is 0610005, a reserved name 0609002, an unknown object 0609001."""
    await created_akte(dms, tmp_path, pdf_bytes)
    uuid = fv.akte().uuid

    missing = await answer(
        dms,
        tmp_path,
        fvdaten.build_metadaten_aktualisieren_0610(
            "3.1.0", uuid, [fvdaten.Feld(name="Neu", wert="x")], fv.kopf()
        ),
    )
    reserved = await answer(
        dms,
        tmp_path,
        fvdaten.build_metadaten_anlegen_0609(
            "3.1.0", uuid, [fvdaten.Feld(name="xdomea_uuid", wert="x")], fv.kopf()
        ),
    )
    unknown = await answer(dms, tmp_path, fv.REQUESTS["0609"]("3.1.0"))

    assert missing.meldungen[0].code == "0610005"
    assert reserved.meldungen[0].code == "0609002"
    assert unknown.meldungen[0].code == "0609001"


# --------------------------------------------------------------------------- who may ask


async def test_a_request_from_another_absender_is_answered_with_0000005_and_touches_nothing(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Only the configured Fachverfahren are served; anyone else gets 0000005, nothing is filed."""
    xml = fv.erstellen("3.1.0", fv.akte(), absender=fv.DMS)

    antwort = await answer(dms, tmp_path, xml, fv.documents_of(xml, pdf_bytes))

    assert antwort.meldungen[0].code == fvdaten.FACHVERFAHREN_UNBEKANNT
    assert antwort.rueckgaben == ()
    assert await dms.port.locate(fv.AKTE_UUID) is None


# --------------------------------------------------------------------------- 0605


async def test_sgo_ablegen_files_a_stapel_and_answers_each_object_by_number(
    dms: Dms, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A 0605 Stapel of two Dokumente into the Akte answers both, numbered, with addresses."""
    await created_akte(dms, tmp_path, pdf_bytes)
    first, second = fv.dokument("a.pdf", betreff="Anlage A"), fv.dokument("b.pdf", betreff="B")
    xml = fvdaten.build_sgo_ablegen_0605(
        "3.1.0",
        [
            fvdaten.Erstellen(objekt=first, fachverfahren_objekt_id="A", id_container=fv.AKTE_UUID),
            fvdaten.Erstellen(
                objekt=second, fachverfahren_objekt_id="B", id_container=fv.AKTE_UUID
            ),
        ],
        fv.kopf(),
    )

    antwort = await answer(dms, tmp_path / "2", xml, fv.documents_of(xml, pdf_bytes))

    assert antwort.codes() == (fvdaten.ERFOLG,)
    assert [(r.nummer_im_stapel, r.idsgo) for r in antwort.rueckgaben] == [
        (1, first.uuid),
        (2, second.uuid),
    ]
    assert [r.ablageort for r in antwort.rueckgaben] == [
        await dms.port.locate(first.uuid),
        await dms.port.locate(second.uuid),
    ]


async def test_sgo_ablegen_into_an_unknown_container_is_answered_with_0605001(
    dms: Dms, tmp_path: Path
) -> None:
    """The 0605 reports an unknown IDContainer with its own code, 0605001."""
    xml = fvdaten.build_sgo_ablegen_0605(
        "3.1.0",
        [
            fvdaten.Erstellen(
                objekt=DokumentSpec(betreff="x"), fachverfahren_objekt_id="A", id_container=fv.UUID
            )
        ],
        fv.kopf(),
    )

    antwort = await answer(dms, tmp_path, xml)

    assert antwort.meldungen[0].code == "0605001"
