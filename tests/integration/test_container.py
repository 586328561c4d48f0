"""Reading and writing xdomea containers against the real schemas."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from adapters.xdomea import naming
from adapters.xdomea.container import Container, ContainerWriter, read_container, write_container
from gateway.errors import IncompleteContainer
from tests.conftest import SHARED_SAMPLES
from tests.zipcraft import (
    MESSAGE_NAME,
    SAMPLE_0503,
    SAMPLE_DATEINAME,
    SAMPLE_PROZESS_ID,
    Entry,
    write_zip,
)

SAMPLE = (SHARED_SAMPLES / SAMPLE_0503).read_bytes()
PDF = (SHARED_SAMPLES / "pdfa" / "test_pdf_a2-u.pdf").read_bytes()
UMLAUT_NAME = "e8b289cb-f8dd-492a-b3cf-560674eaa92b_Prüfbericht_Größe_ø.pdf"


def test_a_container_in_memory_reads_like_its_file(tmp_path: Path) -> None:
    """A container read from ``io.BytesIO`` reports what its file reports, named as told."""
    path, _ = write_container(tmp_path, SAMPLE, {SAMPLE_DATEINAME: PDF})

    in_memory = read_container(io.BytesIO(path.read_bytes()), where="the upload")

    assert in_memory.valid
    assert in_memory.path == "the upload"
    assert in_memory.entries == read_container(path).entries


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_written_container_reads_back_with_bit_identical_documents(tmp_path: Path) -> None:
    """A container written and read again reports the SHA-256 of the original document bytes."""
    path, written = write_container(tmp_path, SAMPLE, {SAMPLE_DATEINAME: PDF})

    report = read_container(path)

    assert report.valid
    by_name = {e.name: e for e in report.entries}
    assert by_name[SAMPLE_DATEINAME].sha256 == _sha(PDF)
    assert by_name[SAMPLE_DATEINAME].role == "primaerdokument"
    assert {e.name: e.sha256 for e in written} == {e.name: e.sha256 for e in report.entries}


def test_open_document_streams_the_original_bytes(tmp_path: Path) -> None:
    """A document read through the container is byte-for-byte the one written."""
    path, _ = write_container(tmp_path, SAMPLE, {SAMPLE_DATEINAME: PDF})

    with Container(path) as container, container.open_document(SAMPLE_DATEINAME) as stream:
        assert stream.read() == PDF


@pytest.mark.parametrize("style", list(naming.NamingStyle))
def test_container_names_follow_the_chosen_style_and_read_back(
    style: naming.NamingStyle, tmp_path: Path
) -> None:
    """Each naming style produces a file name that parses back to ProzessID and code."""
    path, _ = write_container(tmp_path, SAMPLE, {SAMPLE_DATEINAME: PDF}, style=style)

    parsed = naming.parse_name(path.name)

    assert parsed is not None
    assert (parsed.prozess_id, parsed.code, parsed.style) == (SAMPLE_PROZESS_ID, "0503", style)
    assert read_container(path).valid


def test_long_name_spells_the_message_element() -> None:
    """The long style is <ProzessID>_<Family>.<Name>.<Code>.zip, as x-man writes it."""
    typ = naming.MessageType.from_element("Abgabe.Abgabe.0401")

    assert naming.container_name("abc", typ) == "abc_Abgabe.Abgabe.0401.zip"
    assert naming.container_name("abc", typ, naming.NamingStyle.NUMBERED) == "abc_0401_1.zip"
    assert naming.container_name("abc", typ, naming.NamingStyle.SHORT) == "abc_0401.zip"


@pytest.mark.parametrize("codec", ["cp850", "cp437", "utf-8"])
def test_entry_names_without_utf8_flag_are_matched_in_the_senders_code_page(
    codec: str, tmp_path: Path
) -> None:
    """Windows tools write CP437/CP850 (or UTF-8) names without the flag; they still match."""
    name = UMLAUT_NAME if codec != "cp437" else UMLAUT_NAME.replace("ø", "é")
    message = SAMPLE.replace(SAMPLE_DATEINAME.encode(), name.encode())
    path = write_zip(
        tmp_path / "c.zip", [Entry(MESSAGE_NAME, message), Entry(name.encode(codec), PDF)]
    )

    report = read_container(path)

    assert report.valid, report.all_findings
    assert {e.name for e in report.entries if e.role == "primaerdokument"} == {name}


def test_upper_case_uuids_are_kept_as_spelled(tmp_path: Path) -> None:
    """UUIDs in upper case are accepted, and the view keeps the sender's spelling."""
    upper = SAMPLE.replace(
        b"d9fc876a-3838-4e15-9203-15c703afe730", b"D9FC876A-3838-4E15-9203-15C703AFE730"
    )
    path, _ = write_container(tmp_path, upper, {SAMPLE_DATEINAME: PDF})

    report = read_container(path)

    (dokument,) = report.nachricht.schriftgutobjekte
    assert dokument.uuid == "D9FC876A-3838-4E15-9203-15C703AFE730"
    assert dokument.uuid_key == "d9fc876a-3838-4e15-9203-15c703afe730"


def test_document_outside_any_akte_is_read(tmp_path: Path) -> None:
    """A Dokument directly under Schriftgutobjekt (no Akte, no Vorgang) is part of the tree."""
    path, _ = write_container(tmp_path, SAMPLE, {SAMPLE_DATEINAME: PDF})

    (dokument,) = read_container(path).nachricht.schriftgutobjekte

    assert dokument.art.value == "Dokument"
    assert dokument.dateinamen() == (SAMPLE_DATEINAME,)


def test_writer_refuses_to_finish_without_every_referenced_document(tmp_path: Path) -> None:
    """Closing a writer that lacks a referenced document raises and leaves no file at all."""
    writer = ContainerWriter(tmp_path, SAMPLE)

    with pytest.raises(IncompleteContainer, match=SAMPLE_DATEINAME):
        writer.close()

    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_documents_the_message_does_not_reference(tmp_path: Path) -> None:
    """Adding an unreferenced document is refused: it would arrive unreported."""
    with (
        pytest.raises(IncompleteContainer, match="not referenced"),
        ContainerWriter(tmp_path, SAMPLE) as writer,
    ):
        writer.add_document("stray.pdf", io.BytesIO(b"x"))

    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_an_invalid_message(tmp_path: Path) -> None:
    """A message that does not validate is never packed into a container."""
    broken = SAMPLE.replace(b"<xdomea:ProzessID>", b"<xdomea:ProzessIDX>").replace(
        b"</xdomea:ProzessID>", b"</xdomea:ProzessIDX>"
    )

    with pytest.raises(IncompleteContainer, match="invalid message"):
        ContainerWriter(tmp_path, broken)

    assert list(tmp_path.iterdir()) == []


def test_writer_streams_documents_from_files(tmp_path: Path) -> None:
    """Documents given as paths are streamed in and hashed on the way."""
    source = tmp_path / "src" / "doc.pdf"
    source.parent.mkdir()
    source.write_bytes(PDF)

    path, entries = write_container(tmp_path / "out", SAMPLE, {SAMPLE_DATEINAME: source})

    assert {e.name: e.sha256 for e in entries}[SAMPLE_DATEINAME] == _sha(PDF)
    with zipfile.ZipFile(path) as archive:
        assert archive.read(SAMPLE_DATEINAME) == PDF


def test_container_with_subfolder_document_reports_it_unreferenced(tmp_path: Path) -> None:
    """Documents are matched by their exact entry name; a copy in a subfolder does not count."""
    path = write_zip(
        tmp_path / "c.zip",
        [
            Entry(MESSAGE_NAME, SAMPLE),
            Entry(SAMPLE_DATEINAME, PDF),
            Entry(f"extra/{SAMPLE_DATEINAME}", PDF),
        ],
    )

    report = read_container(path)

    assert report.valid
    assert [e.name for e in report.entries if e.role == "unreferenced"] == [
        f"extra/{SAMPLE_DATEINAME}"
    ]
