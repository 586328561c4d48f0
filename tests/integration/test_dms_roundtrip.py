"""Import into a DMS and export back: both backends, every mapped element, bit-identical documents.

The dmsin backend talks through zeep, built from the unchanged WSDL in ../shared,
to the simulator on 127.0.0.1; the filesystem backend writes real folders.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from adapters.dms import dmsin_names as names
from adapters.dms.destination import DmsImport
from adapters.dms.exporter import export_0401
from adapters.xdomea import builders
from adapters.xdomea.container import read_container
from contracts.builders import AkteSpec, DokumentSpec, VersionSpec, VorgangSpec
from contracts.config import DmsDestination, GatewayConfig
from contracts.xdomea import uuid_key
from gateway.blobs import BlobStore
from gateway.destinations import build_destinations
from gateway.errors import PermanentDeliveryError
from tests import xdomea_specs
from tests.delivery_support import outbound
from tests.dms_support import (
    WSDL,
    Behaelter,
    Sim,
    assert_exactly_filed,
    bauakte,
    container,
    container_from_xml,
    datei,
    dmsin_destination,
    filesystem_destination,
    running_sim,
)


@dataclass
class Backend:
    """One DMS under test: the destination and, for dmsin, the simulator behind it."""

    name: str
    destination: DmsImport
    sim: Sim | None


@pytest.fixture(params=["filesystem", "dmsin-soap11", "dmsin-soap12"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each DMS backend; dmsin over SOAP 1.1 and 1.2 against the simulator."""
    if request.param == "filesystem":
        destination = filesystem_destination(tmp_path / "dms")
        yield Backend(request.param, destination, None)
        await destination.close()
        return
    async with running_sim(tmp_path / "sim") as sim:
        version = "1.2" if request.param.endswith("12") else "1.1"
        destination = dmsin_destination(sim, soap_version=version)
        yield Backend(request.param, destination, sim)
        await destination.close()


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    """An empty blob store."""
    return BlobStore(tmp_path / "blobs")


async def roundtrip(
    backend: Backend,
    blobs: BlobStore,
    tmp_path: Path,
    built: Behaelter,
    uuid: str,
    version: str,
) -> Behaelter:
    """Deliver ``built`` to the backend, export the object ``uuid`` again; the export."""
    item = await outbound(blobs, built.data, prozess_id=built.prozess_id)
    ergebnis = await backend.destination.import_message(item)
    exported = await export_0401(
        backend.destination.port,
        ergebnis.adressen[uuid],
        tmp_path / "export",
        version=version,
        absender=xdomea_specs.ABSENDER,
        empfaenger=xdomea_specs.EMPFAENGER,
    )
    return Behaelter(
        path=exported.path,
        data=exported.path.read_bytes(),
        prozess_id=exported.prozess_id,
        documents={e.name: e.sha256 for e in exported.entries if e.role == "primaerdokument"},
    )


async def test_roundtrip_keeps_every_mapped_element_and_every_byte(
    backend: Backend, blobs: BlobStore, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Container → DMS → container: the same tree, metadata and SHA-256 of every document."""
    akte = bauakte()
    built = container(tmp_path / "in", [akte], pdf_bytes)

    exported = await roundtrip(backend, blobs, tmp_path, built, akte.uuid, "3.1.0")

    report = read_container(exported.path)
    assert report.valid, report.all_findings
    original = read_container(built.path).nachricht
    assert [xdomea_specs.shape(s) for s in report.nachricht.schriftgutobjekte] == [
        xdomea_specs.shape(s) for s in original.schriftgutobjekte
    ]
    for theirs, ours in zip(report.nachricht.walk(), original.walk(), strict=True):
        assert (theirs.fremdes_geschaeftszeichen, theirs.posteingangsdatum) == (
            ours.fremdes_geschaeftszeichen,
            ours.posteingangsdatum,
        )
    assert exported.documents == built.documents


async def test_a_vorgang_exports_on_its_own(
    backend: Backend, blobs: BlobStore, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Exporting one Vorgang of an imported Akte gives that Vorgang with its Teilvorgang."""
    akte = bauakte()
    vorgang = akte.vorgaenge[0]
    built = container(tmp_path / "in", [akte], pdf_bytes)

    exported = await roundtrip(backend, blobs, tmp_path, built, vorgang.uuid, "3.0.0")

    report = read_container(exported.path)
    assert report.valid, report.all_findings
    assert [xdomea_specs.shape(s) for s in report.nachricht.schriftgutobjekte] == list(
        xdomea_specs.expected([vorgang])
    )
    names_in_vorgang = set(report.nachricht.dateinamen())
    assert exported.documents == {n: built.documents[n] for n in names_in_vorgang}


async def test_xdomea_2_roundtrip(
    backend: Backend, blobs: BlobStore, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A 2.4.0 Abgabe (Akteninhalt either Dokumente or Vorgänge) comes back as 2.4.0."""
    akte = bauakte().model_copy(update={"dokumente": ()})
    built = container(tmp_path / "in", [akte], pdf_bytes, version="2.4.0")

    exported = await roundtrip(backend, blobs, tmp_path, built, akte.uuid, "2.4.0")

    report = read_container(exported.path)
    assert report.valid, report.all_findings
    assert [xdomea_specs.shape(s) for s in report.nachricht.schriftgutobjekte] == list(
        xdomea_specs.expected([akte])
    )
    assert exported.documents == built.documents


async def test_redelivery_creates_nothing_new(
    backend: Backend, blobs: BlobStore, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Delivering the same message again finds every object and document and adds nothing."""
    akte = bauakte()
    built = container(tmp_path / "in", [akte], pdf_bytes)
    item = await outbound(blobs, built.data, prozess_id=built.prozess_id)

    first = await backend.destination.import_message(item)
    second = await backend.destination.import_message(item.model_copy(update={"attempt": 2}))

    assert second.adressen == first.adressen
    assert (second.angelegt, second.inhalte_angelegt) == (0, 0)
    assert (second.vorhanden, second.inhalte_vorhanden) == (first.angelegt, first.inhalte_angelegt)
    if backend.sim is not None:
        assert_exactly_filed(await backend.sim.objects(), [akte], built.documents)


async def test_incoming_letters_become_eingaenge_the_rest_internal(
    tmp_path: Path, blobs: BlobStore, pdf_bytes: bytes
) -> None:
    """A Dokument with Posteingangsdatum or fremdem Geschäftszeichen is created as Incoming."""
    akte = bauakte()
    built = container(tmp_path / "in", [akte], pdf_bytes)
    async with running_sim(tmp_path / "sim") as sim:
        destination = dmsin_destination(sim)
        await destination.import_message(await outbound(blobs, built.data, prozess_id="p"))
        objects = await sim.objects()
        await destination.close()

    classes = {o["userforms"].get("xdomea_uuid"): o["objclass"] for o in objects}
    eingang = akte.dokumente[0]
    assert classes[uuid_key(eingang.uuid)] == names.EINGANG
    vermerk = akte.vorgaenge[0].dokumente[0]
    assert classes[uuid_key(vermerk.uuid)] == names.INTERN
    (stored,) = [o for o in objects if o["userforms"].get("xdomea_uuid") == uuid_key(eingang.uuid)]
    assert stored["fields"]["foreignnr"] == "B-2024/117"
    assert stored["fields"]["delivery"].startswith("2024-03-04")
    assert classes[uuid_key(akte.uuid)] == names.AKTE
    assert classes[uuid_key(akte.teilakten[0].uuid)] == names.VORGANG


# --------------------------------------------------------------------------- bad input


async def test_akte_without_aktenplaneintrag_is_refused_before_any_dms_call(
    tmp_path: Path, blobs: BlobStore, pdf_bytes: bytes
) -> None:
    """An Akte whose Aktenzeichen the Aktenplan mapping misses is refused and nothing is filed."""
    akte = bauakte().model_copy(update={"kennzeichen": "10.02/2024"})
    built = container(tmp_path / "in", [akte], pdf_bytes)
    async with running_sim(tmp_path / "sim") as sim:
        destination = dmsin_destination(sim)
        with pytest.raises(
            PermanentDeliveryError, match=r"^message .*10\.02/2024.*no Aktenplaneintrag"
        ):
            await destination.import_message(await outbound(blobs, built.data, prozess_id="p"))
        assert await sim.objects() == []
        assert (await sim.calls())["calls"] == []
        await destination.close()


async def test_vorgang_outside_an_akte_needs_an_ablage(
    tmp_path: Path, blobs: BlobStore, pdf_bytes: bytes
) -> None:
    """A top-level Vorgang is refused by dmsin without ablage, with the setting to fix it."""
    vorgang = VorgangSpec(
        betreff="Beschwerde",
        dokumente=(DokumentSpec(versionen=(VersionSpec(formate=(datei("b.pdf"),)),)),),
    )
    built = container(tmp_path / "in", [vorgang], pdf_bytes)
    async with running_sim(tmp_path / "sim") as sim:
        destination = dmsin_destination(sim)
        with pytest.raises(PermanentDeliveryError, match="set the destination's ablage"):
            await destination.import_message(await outbound(blobs, built.data, prozess_id="p"))
        assert await sim.objects() == []
        await destination.close()


async def test_vorgang_outside_an_akte_goes_to_the_ablage(
    tmp_path: Path, blobs: BlobStore, pdf_bytes: bytes
) -> None:
    """With an ablage configured, a top-level Vorgang is filed there."""
    vorgang = VorgangSpec(
        betreff="Beschwerde",
        dokumente=(DokumentSpec(versionen=(VersionSpec(formate=(datei("b.pdf"),)),)),),
    )
    async with running_sim(tmp_path / "sim") as sim:
        ablage_akte = AkteSpec(betreff="Allgemeiner Schriftverkehr", kennzeichen="63.01.00")
        setup = dmsin_destination(sim)
        first = container(tmp_path / "a", [ablage_akte], pdf_bytes)
        ablage = (
            await setup.import_message(await outbound(blobs, first.data, prozess_id="a"))
        ).adressen[ablage_akte.uuid]
        await setup.close()
        destination = DmsImport(
            "dms-b",
            DmsDestination(
                type="dms",
                backend="dmsin",
                dmsin=setup.port.config,  # type: ignore[attr-defined]
                aktenplan={"63.01": sim.aktenplaneintrag},
                ablage=ablage,
            ),
        )
        built = container(tmp_path / "in", [vorgang], pdf_bytes)
        ergebnis = await destination.import_message(
            await outbound(blobs, built.data, prozess_id="p")
        )
        objects = {o["address"]: o for o in await sim.objects()}
        await destination.close()

    assert objects[ergebnis.adressen[vorgang.uuid]]["parent"] == ablage


async def test_invalid_container_is_permanent_and_files_nothing(
    tmp_path: Path, blobs: BlobStore, pdf_bytes: bytes
) -> None:
    """A container missing a referenced document is refused with the missing name."""
    import zipfile

    built = container(tmp_path / "in", [bauakte()], pdf_bytes)
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(built.path) as source, zipfile.ZipFile(broken, "w") as target:
        dropped = sorted(built.documents)[0]
        for info in source.infolist():
            if info.filename != dropped:
                target.writestr(info, source.read(info))
    destination = filesystem_destination(tmp_path / "dms")
    with pytest.raises(PermanentDeliveryError, match=f"invalid.*{dropped}"):
        await destination.import_message(
            await outbound(blobs, broken.read_bytes(), prozess_id=built.prozess_id)
        )
    assert list((tmp_path / "dms").iterdir()) == []


async def test_corrupted_blob_is_permanent(
    tmp_path: Path, blobs: BlobStore, pdf_bytes: bytes
) -> None:
    """A blob whose bytes no longer match its SHA-256 is never imported."""
    built = container(tmp_path / "in", [bauakte()], pdf_bytes)
    item = await outbound(blobs, built.data, prozess_id=built.prozess_id)
    data = bytearray(item.blob_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    item.blob_path.chmod(0o644)
    item.blob_path.write_bytes(bytes(data))
    destination = filesystem_destination(tmp_path / "dms")

    with pytest.raises(PermanentDeliveryError, match="corrupted"):
        await destination.deliver(item)

    assert list((tmp_path / "dms").iterdir()) == []


async def test_factory_builds_the_dms_destination(
    tmp_path: Path, blobs: BlobStore, pdf_bytes: bytes
) -> None:
    """``type = "dms"`` in the configuration gives a destination that imports on deliver."""
    (tmp_path / "dms").mkdir()
    config = GatewayConfig.model_validate(
        {
            "node": {"id": "kommune-b", "behoerdenkennung": "060:4711"},
            "destinations": {
                "dms": {"type": "dms", "backend": "filesystem", "directory": str(tmp_path / "dms")}
            },
        }
    )
    destination = build_destinations(config)["dms"]
    akte = bauakte()
    built = container(tmp_path / "in", [akte], pdf_bytes)

    await destination.deliver(await outbound(blobs, built.data, prozess_id=built.prozess_id))

    assert (tmp_path / "dms" / uuid_key(akte.uuid) / "objekt.json").is_file()
    await destination.close()


def with_extra_metadata(xml: bytes, akte: AkteSpec) -> bytes:
    """The message with elements no DMS field holds: Bemerkung of the Akte, Bezug of the Eingang."""
    root = etree.fromstring(xml)
    ns = etree.QName(root).namespace

    def objekt(uuid: str) -> etree._Element:
        (ident,) = [i for i in root.iter(f"{{{ns}}}ID") if i.text == uuid]
        owner = ident.getparent().getparent()  # type: ignore[union-attr]
        assert owner is not None
        return owner

    kennzeichen = objekt(akte.uuid).find(f"{{{ns}}}AllgemeineMetadaten/{{{ns}}}Kennzeichen")
    assert kennzeichen is not None
    kennzeichen.addnext(etree.Element(f"{{{ns}}}Bemerkung"))
    kennzeichen.getnext().text = "Abgabe nach Zuständigkeitswechsel"  # type: ignore[union-attr]
    datum = objekt(akte.dokumente[0].uuid).find(f"{{{ns}}}Posteingangsdatum")
    assert datum is not None
    datum.addnext(etree.Element(f"{{{ns}}}Bezug"))
    datum.getnext().text = "Ihr Schreiben vom 1. März"  # type: ignore[union-attr]
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


async def test_metadata_without_dms_field_comes_back_in_the_same_version(
    backend: Backend, blobs: BlobStore, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Elements the DMS has no field for are kept with the object and exported again."""
    akte = bauakte()
    xml = with_extra_metadata(
        builders.build_abgabe_0401(
            "3.1.0", [akte], absender=xdomea_specs.ABSENDER, empfaenger=xdomea_specs.EMPFAENGER
        ),
        akte,
    )
    built = container_from_xml(tmp_path / "in", xml, pdf_bytes)

    same = await roundtrip(backend, blobs, tmp_path, built, akte.uuid, "3.1.0")
    other = await roundtrip(backend, blobs, tmp_path / "other", built, akte.uuid, "3.0.0")

    exported = read_container(same.path)
    assert exported.valid, exported.all_findings
    message = exported.checked.tree
    ns = "urn:xoev-de:xdomea:schema:3.1.0"
    assert message.findtext(f".//{{{ns}}}Bemerkung") == "Abgabe nach Zuständigkeitswechsel"
    assert message.findtext(f".//{{{ns}}}Bezug") == "Ihr Schreiben vom 1. März"
    assert [xdomea_specs.shape(s) for s in exported.nachricht.schriftgutobjekte] == list(
        xdomea_specs.expected([akte])
    )
    assert same.documents == built.documents
    # Across versions the original elements are not trusted; the mapped ones still are.
    older = read_container(other.path)
    assert older.valid, older.all_findings
    assert older.checked.tree.find(".//{urn:xoev-de:xdomea:schema:3.0.0}Bemerkung") is None
    assert [xdomea_specs.shape(s) for s in older.nachricht.schriftgutobjekte] == list(
        xdomea_specs.expected([akte])
    )


async def test_bare_message_without_documents_is_imported(tmp_path: Path, blobs: BlobStore) -> None:
    """A message delivered as XML (no container) files its objects when it has no documents."""
    akte = AkteSpec(betreff="Leere Akte", kennzeichen="63.01.07", vorgaenge=(VorgangSpec(),))
    xml = builders.build_abgabe_0401(
        "3.1.0", [akte], absender=xdomea_specs.ABSENDER, empfaenger=xdomea_specs.EMPFAENGER
    )
    destination = filesystem_destination(tmp_path / "dms")

    ergebnis = await destination.import_message(
        await outbound(blobs, xml, prozess_id="p", kind="message")
    )

    assert ergebnis.angelegt == 2


async def test_bare_message_with_documents_is_refused(tmp_path: Path, blobs: BlobStore) -> None:
    """A message that references documents but came without its container is permanent."""
    xml = builders.build_abgabe_0401(
        "3.1.0", [bauakte()], absender=xdomea_specs.ABSENDER, empfaenger=xdomea_specs.EMPFAENGER
    )
    destination = filesystem_destination(tmp_path / "dms")

    with pytest.raises(PermanentDeliveryError, match="send the ZIP container"):
        await destination.deliver(await outbound(blobs, xml, prozess_id="p", kind="message"))

    assert list((tmp_path / "dms").iterdir()) == []


async def test_wsdl_from_a_file_with_the_endpoint_configured(
    tmp_path: Path, blobs: BlobStore, pdf_bytes: bytes
) -> None:
    """The WSDL may be a local file; ``endpoint`` then says where the service is."""
    akte = bauakte()
    built = container(tmp_path / "in", [akte], pdf_bytes)
    async with running_sim(tmp_path / "sim") as sim:
        destination = dmsin_destination(sim, wsdl=str(WSDL), endpoint=sim.url)

        await destination.deliver(await outbound(blobs, built.data, prozess_id="p"))

        assert_exactly_filed(await sim.objects(), [akte], built.documents)
        await destination.close()
