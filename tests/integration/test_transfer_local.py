"""A local transfer folder: atomic uploads, listings without temporary names, downloads, removal."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from adapters.transfer.local import LocalTransferFolder
from contracts.transfer import LocalFolderConfig
from gateway.errors import TransientDeliveryError


@pytest.fixture
def folder(tmp_path: Path) -> LocalTransferFolder:
    (tmp_path / "share" / "to_archive").mkdir(parents=True)
    return LocalTransferFolder(LocalFolderConfig(type="local", path=tmp_path / "share"))


def _file(tmp_path: Path, name: str, content: bytes) -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


async def test_uploaded_file_appears_under_its_name_with_its_bytes(
    folder: LocalTransferFolder, tmp_path: Path
) -> None:
    """An upload publishes the file's exact bytes under the final name and leaves no temp file."""
    source, digest = _file(tmp_path, "a.zip", b"PK\x03\x04 content")
    await folder.upload("to_archive", "p1_Aussonderung.Anbieteverzeichnis.0501.zip", source, digest)
    published = folder.root / "to_archive"
    assert [p.name for p in published.iterdir()] == ["p1_Aussonderung.Anbieteverzeichnis.0501.zip"]
    assert (published / "p1_Aussonderung.Anbieteverzeichnis.0501.zip").read_bytes() == (
        b"PK\x03\x04 content"
    )


async def test_uploading_the_same_bytes_again_counts_as_done(
    folder: LocalTransferFolder, tmp_path: Path
) -> None:
    """A redelivery of identical content under an existing name is not an error."""
    source, digest = _file(tmp_path, "a.zip", b"same")
    await folder.upload("to_archive", "x.zip", source, digest)
    await folder.upload("to_archive", "x.zip", source, digest)
    assert (folder.root / "to_archive" / "x.zip").read_bytes() == b"same"


async def test_uploading_different_bytes_under_a_taken_name_waits(
    folder: LocalTransferFolder, tmp_path: Path
) -> None:
    """A different file the other side has not taken yet is never replaced."""
    first, first_digest = _file(tmp_path, "a.zip", b"first")
    second, second_digest = _file(tmp_path, "b.zip", b"second")
    await folder.upload("to_archive", "x.zip", first, first_digest)
    with pytest.raises(TransientDeliveryError, match="different file"):
        await folder.upload("to_archive", "x.zip", second, second_digest)
    assert (folder.root / "to_archive" / "x.zip").read_bytes() == b"first"


async def test_listing_leaves_out_temporary_and_hidden_names(
    folder: LocalTransferFolder,
) -> None:
    """Files still being written under a temporary name are not listed."""
    inbox = folder.root / "to_archive"
    (inbox / "done.zip").write_bytes(b"12345")
    (inbox / ".done2.zip.ab12.part").write_bytes(b"half")
    (inbox / "upload.zip.tmp").write_bytes(b"half")
    (inbox / "sub").mkdir()
    entries = await folder.list("to_archive")
    assert [(e.name, e.size) for e in entries] == [("done.zip", 5)]


async def test_download_copies_the_bytes_and_returns_their_sha256(
    folder: LocalTransferFolder, tmp_path: Path
) -> None:
    """A download is a verified, complete copy."""
    (folder.root / "to_archive" / "answer.xml").write_bytes(b"<x/>")
    digest = await folder.download("to_archive", "answer.xml", tmp_path / "copy.xml")
    assert (tmp_path / "copy.xml").read_bytes() == b"<x/>"
    assert digest == hashlib.sha256(b"<x/>").hexdigest()


async def test_download_of_a_file_taken_away_meanwhile_raises_file_not_found(
    folder: LocalTransferFolder, tmp_path: Path
) -> None:
    """A vanished file is reported as such and leaves no partial copy."""
    with pytest.raises(FileNotFoundError):
        await folder.download("to_archive", "gone.xml", tmp_path / "copy.xml")
    assert not (tmp_path / "copy.xml").exists()


async def test_remove_deletes_and_tolerates_a_file_already_gone(
    folder: LocalTransferFolder,
) -> None:
    """Removing twice is fine."""
    (folder.root / "to_archive" / "old.zip").write_bytes(b"x")
    await folder.remove("to_archive", "old.zip")
    await folder.remove("to_archive", "old.zip")
    assert not (folder.root / "to_archive" / "old.zip").exists()


async def test_missing_sub_folder_is_transient_and_never_created(
    folder: LocalTransferFolder, tmp_path: Path
) -> None:
    """A share that is not mounted is waited for, not replaced by a local folder."""
    source, digest = _file(tmp_path, "a.zip", b"x")
    with pytest.raises(TransientDeliveryError, match="is mounted"):
        await folder.upload("from_archive", "a.zip", source, digest)
    assert not (folder.root / "from_archive").exists()


async def test_sub_folder_may_not_climb_out_of_the_root(folder: LocalTransferFolder) -> None:
    """'..' in a configured sub-folder is refused."""
    with pytest.raises(ValueError, match=r"'\.\.'"):
        await folder.list("../etc")
