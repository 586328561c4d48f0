"""Transfer folders, local and WebDAV: one contract (atomic uploads, listings without
temporary names, downloads, removal), then what only WebDAV has."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.transfer.folders import open_folder
from adapters.transfer.webdav import WebDavTransferFolder
from contracts.transfer import WebDavFolderConfig
from gateway.dev_webdav import WebDavServer, webdav_server
from gateway.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from tests.certs import CertAuthority
from tests.transfer_support import KINDS, PASSWORD_ENV, Share, dav_server, share, webdav_config

__all__ = ["dav_server"]


@pytest.fixture(params=KINDS)
async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Share]:
    """An empty transfer folder with a ``to_archive`` sub-folder, of each kind; none may skip."""
    server = request.getfixturevalue("dav_server") if request.param == "webdav" else None
    async with share(request.param, tmp_path, server, ("to_archive",)) as made:
        yield made


def _file(tmp_path: Path, name: str, content: bytes) -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


# --------------------------------------------------------------------------- the contract


async def test_uploaded_file_appears_under_its_name_with_its_bytes(
    shared: Share, tmp_path: Path
) -> None:
    """An upload publishes the file's exact bytes under the final name and leaves no temp file."""
    source, digest = _file(tmp_path, "a.zip", b"PK\x03\x04 content")
    await shared.folder.upload(
        "to_archive", "p1_Aussonderung.Anbieteverzeichnis.0501.zip", source, digest
    )
    published = shared.root / "to_archive"
    assert [p.name for p in published.iterdir()] == ["p1_Aussonderung.Anbieteverzeichnis.0501.zip"]
    assert (published / "p1_Aussonderung.Anbieteverzeichnis.0501.zip").read_bytes() == (
        b"PK\x03\x04 content"
    )


async def test_uploading_the_same_bytes_again_counts_as_done(shared: Share, tmp_path: Path) -> None:
    """A redelivery of identical content under an existing name is not an error."""
    source, digest = _file(tmp_path, "a.zip", b"same")
    await shared.folder.upload("to_archive", "x.zip", source, digest)
    await shared.folder.upload("to_archive", "x.zip", source, digest)
    assert [p.name for p in (shared.root / "to_archive").iterdir()] == ["x.zip"]
    assert (shared.root / "to_archive" / "x.zip").read_bytes() == b"same"


async def test_uploading_different_bytes_under_a_taken_name_waits(
    shared: Share, tmp_path: Path
) -> None:
    """A different file the other side has not taken yet is never replaced."""
    first, first_digest = _file(tmp_path, "a.zip", b"first")
    second, second_digest = _file(tmp_path, "b.zip", b"second")
    await shared.folder.upload("to_archive", "x.zip", first, first_digest)
    with pytest.raises(TransientDeliveryError, match="different file"):
        await shared.folder.upload("to_archive", "x.zip", second, second_digest)
    assert (shared.root / "to_archive" / "x.zip").read_bytes() == b"first"
    assert [p.name for p in (shared.root / "to_archive").iterdir()] == ["x.zip"]


async def test_uploading_a_different_file_of_the_same_size_waits(
    shared: Share, tmp_path: Path
) -> None:
    """Equal size is not equal content: the bytes are compared, too."""
    first, first_digest = _file(tmp_path, "a.zip", b"aaaa")
    second, second_digest = _file(tmp_path, "b.zip", b"bbbb")
    await shared.folder.upload("to_archive", "x.zip", first, first_digest)
    with pytest.raises(TransientDeliveryError, match="different file"):
        await shared.folder.upload("to_archive", "x.zip", second, second_digest)
    assert (shared.root / "to_archive" / "x.zip").read_bytes() == b"aaaa"


async def test_uploading_a_source_that_does_not_match_its_sha256_is_permanent(
    shared: Share, tmp_path: Path
) -> None:
    """A damaged local copy is refused before anything is published."""
    source, _ = _file(tmp_path, "a.zip", b"damaged")
    with pytest.raises(PermanentDeliveryError, match="damaged"):
        await shared.folder.upload("to_archive", "x.zip", source, "0" * 64)
    assert list((shared.root / "to_archive").iterdir()) == []


async def test_listing_leaves_out_temporary_and_hidden_names(shared: Share) -> None:
    """Files still being written under a temporary name, and sub-folders, are not listed."""
    inbox = shared.root / "to_archive"
    (inbox / "done.zip").write_bytes(b"12345")
    (inbox / ".done2.zip.ab12.part").write_bytes(b"half")
    (inbox / "upload.zip.tmp").write_bytes(b"half")
    (inbox / "sub").mkdir()
    entries = await shared.folder.list("to_archive")
    assert [(e.name, e.size) for e in entries] == [("done.zip", 5)]


async def test_listing_reports_a_modification_time(shared: Share) -> None:
    """Each entry carries when it last changed, which the stable-file rule compares."""
    (shared.root / "to_archive" / "done.zip").write_bytes(b"12345")
    [entry] = await shared.folder.list("to_archive")
    assert entry.modified is not None
    assert (
        abs(entry.modified.timestamp() - os.stat(shared.root / "to_archive" / "done.zip").st_mtime)
        < 2
    )


async def test_names_with_spaces_and_umlauts_round_trip(shared: Share, tmp_path: Path) -> None:
    """A name with spaces, umlauts and a percent sign is stored, listed and read as spelled."""
    name = "Prüfung 100% Größe_Aussonderung.Aussonderung.0503.zip"
    source, digest = _file(tmp_path, "a.zip", b"umlaut")
    await shared.folder.upload("to_archive", name, source, digest)
    assert [p.name for p in (shared.root / "to_archive").iterdir()] == [name]
    assert [e.name for e in await shared.folder.list("to_archive")] == [name]
    assert await shared.folder.download("to_archive", name, tmp_path / "copy") == digest
    await shared.folder.remove("to_archive", name)
    assert list((shared.root / "to_archive").iterdir()) == []


async def test_root_folder_is_addressed_by_the_empty_string(shared: Share) -> None:
    """``""`` lists the root itself, without its sub-folders."""
    (shared.root / "top.xml").write_bytes(b"<x/>")
    assert [e.name for e in await shared.folder.list("")] == ["top.xml"]


async def test_download_copies_the_bytes_and_returns_their_sha256(
    shared: Share, tmp_path: Path
) -> None:
    """A download is a verified, complete copy."""
    (shared.root / "to_archive" / "answer.xml").write_bytes(b"<x/>")
    digest = await shared.folder.download("to_archive", "answer.xml", tmp_path / "copy.xml")
    assert (tmp_path / "copy.xml").read_bytes() == b"<x/>"
    assert digest == hashlib.sha256(b"<x/>").hexdigest()


async def test_download_streams_a_large_file_intact(shared: Share, tmp_path: Path) -> None:
    """A file of several chunks arrives bit-identical."""
    content = os.urandom(3 * 1024 * 1024 + 17)
    (shared.root / "to_archive" / "big.zip").write_bytes(content)
    digest = await shared.folder.download("to_archive", "big.zip", tmp_path / "big.zip")
    assert digest == hashlib.sha256(content).hexdigest()
    assert (tmp_path / "big.zip").read_bytes() == content


async def test_download_of_a_file_taken_away_meanwhile_raises_file_not_found(
    shared: Share, tmp_path: Path
) -> None:
    """A vanished file is reported as such and leaves no partial copy."""
    with pytest.raises(FileNotFoundError):
        await shared.folder.download("to_archive", "gone.xml", tmp_path / "copy.xml")
    assert not (tmp_path / "copy.xml").exists()


async def test_remove_deletes_and_tolerates_a_file_already_gone(shared: Share) -> None:
    """Removing twice is fine."""
    (shared.root / "to_archive" / "old.zip").write_bytes(b"x")
    await shared.folder.remove("to_archive", "old.zip")
    await shared.folder.remove("to_archive", "old.zip")
    assert not (shared.root / "to_archive" / "old.zip").exists()


async def test_missing_sub_folder_is_transient_and_never_created(
    shared: Share, tmp_path: Path
) -> None:
    """A share that is not mounted (or a collection not there) is waited for, never created."""
    source, digest = _file(tmp_path, "a.zip", b"x")
    with pytest.raises(TransientDeliveryError, match="exist"):
        await shared.folder.upload("from_archive", "a.zip", source, digest)
    with pytest.raises(TransientDeliveryError, match="exist"):
        await shared.folder.list("from_archive")
    assert not (shared.root / "from_archive").exists()


async def test_sub_folder_may_not_climb_out_of_the_root(shared: Share) -> None:
    """'..' in a configured sub-folder is refused."""
    with pytest.raises(ValueError, match=r"'\.\.'"):
        await shared.folder.list("../etc")


async def test_file_name_may_not_name_another_folder(shared: Share, tmp_path: Path) -> None:
    """A name with a slash is refused before anything is written."""
    source, digest = _file(tmp_path, "a.zip", b"x")
    with pytest.raises(ValueError, match="plain file name"):
        await shared.folder.upload("to_archive", "../x.zip", source, digest)


# --------------------------------------------------------------------------- WebDAV only


async def test_webdav_root_below_the_server_root_sees_only_its_own_collection(
    dav_server: WebDavServer, tmp_path: Path
) -> None:
    """A root like /dav/archiv/kommune-a (no trailing slash) is used as given, not the server's /."""
    (dav_server.root / "kommune-a" / "in").mkdir(parents=True)
    (dav_server.root / "kommune-b" / "in").mkdir(parents=True)
    (dav_server.root / "kommune-b" / "in" / "other.zip").write_bytes(b"b")
    config = webdav_config(dav_server, "kommune-a")
    folder = open_folder(config.model_copy(update={"url": config.url.rstrip("/")}))
    try:
        source, digest = _file(tmp_path, "a.zip", b"a")
        await folder.upload("in", "mine.zip", source, digest)
        assert [e.name for e in await folder.list("in")] == ["mine.zip"]
    finally:
        await folder.close()
    assert (dav_server.root / "kommune-a" / "in" / "mine.zip").read_bytes() == b"a"
    assert [p.name for p in (dav_server.root / "kommune-b" / "in").iterdir()] == ["other.zip"]


async def test_webdav_listing_carries_an_etag_that_changes_with_the_content(
    dav_server: WebDavServer,
) -> None:
    """The ETag lets the stable-file rule see a rewrite that kept size and second."""
    (dav_server.root / "etag" / "in").mkdir(parents=True)
    folder = open_folder(webdav_config(dav_server, "etag"))
    try:
        path = dav_server.root / "etag" / "in" / "a.zip"
        path.write_bytes(b"12345")
        [before] = await folder.list("in")
        path.write_bytes(b"1234567")
        [after] = await folder.list("in")
    finally:
        await folder.close()
    assert before.etag and after.etag and before.etag != after.etag


async def test_webdav_wrong_password_is_permanent_with_a_clear_text(
    dav_server: WebDavServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """401 names the URL, the user and the variable to check, never the password."""
    (dav_server.root / "wrong-pw").mkdir()
    monkeypatch.setenv(PASSWORD_ENV, "falsches-passwort")
    folder = open_folder(webdav_config(dav_server, "wrong-pw"))
    try:
        with pytest.raises(PermanentDeliveryError) as caught:
            await folder.list("")
    finally:
        await folder.close()
    text = str(caught.value)
    assert dav_server.url in text
    assert "'gateway'" in text and f"${PASSWORD_ENV}" in text and "401" in text
    assert "falsches-passwort" not in text


async def test_webdav_unset_password_variable_is_permanent(
    dav_server: WebDavServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configured but unset password variable is named, not sent as an empty password."""
    monkeypatch.delenv(PASSWORD_ENV)
    folder = open_folder(webdav_config(dav_server, "any"))
    try:
        with pytest.raises(PermanentDeliveryError, match=f"{PASSWORD_ENV} .* is not set"):
            await folder.list("")
    finally:
        await folder.close()


async def test_webdav_server_down_is_transient(tmp_path: Path) -> None:
    """Nobody listening at the URL is a reason to retry, not to give up."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = WebDavTransferFolder(
        webdav_config_for_url(f"http://127.0.0.1:{port}/dav/archiv/", timeout_seconds=5.0)
    )
    source, digest = _file(tmp_path, "a.zip", b"x")
    try:
        with pytest.raises(TransientDeliveryError, match="unreachable"):
            await folder.list("in")
        with pytest.raises(TransientDeliveryError, match="unreachable"):
            await folder.upload("in", "a.zip", source, digest)
    finally:
        await folder.close()


async def test_webdav_server_error_is_transient() -> None:
    """A 503 from an overloaded server is retried later."""

    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503, text="maintenance")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", unavailable)
    async with TestServer(app, host="127.0.0.1") as server:
        folder = WebDavTransferFolder(webdav_config_for_url(str(server.make_url("/dav/archiv/"))))
        try:
            with pytest.raises(TransientDeliveryError, match="503"):
                await folder.list("in")
        finally:
            await folder.close()


def test_webdav_url_with_credentials_is_refused() -> None:
    """A password in the URL would end up in logs; the configuration must use password_env."""
    with pytest.raises(ConfigError, match="password_env"):
        WebDavTransferFolder(webdav_config_for_url("https://user:secret@archiv.example/dav/"))


def test_webdav_url_must_be_http() -> None:
    """A URL that is no http(s) URL of a collection is a configuration error."""
    with pytest.raises(ConfigError, match="http:// or https://"):
        WebDavTransferFolder(webdav_config_for_url("ftp://archiv.example/dav/"))


def webdav_config_for_url(url: str, **changes: object) -> WebDavFolderConfig:
    """A WebDAV configuration for any URL, user ``gateway``."""
    values: dict[str, object] = {"type": "webdav", "url": url, "username": "gateway"}
    values.update(changes)
    return WebDavFolderConfig.model_validate(values)


async def test_webdav_over_https_with_a_client_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ca_file trusts the server, client_certificate and client_key are presented when asked for."""
    ca = CertAuthority.create(tmp_path / "ca")
    server_cert = ca.issue(tmp_path / "server", "archiv", server=True)
    client_cert = ca.issue(tmp_path / "client", "kommune-a", client=True)
    (tmp_path / "dav" / "in").mkdir(parents=True)
    with webdav_server(
        tmp_path / "dav",
        certificate=server_cert.certificate,
        private_key=server_cert.key,
        client_ca=ca.certificate,
    ) as server:
        assert server.url.startswith("https://")
        monkeypatch.setenv(PASSWORD_ENV, server.password)
        folder = open_folder(
            webdav_config_for_url(
                server.url,
                password_env=PASSWORD_ENV,
                ca_file=ca.certificate,
                client_certificate=client_cert.certificate,
                client_key=client_cert.key,
            )
        )
        try:
            source, digest = _file(tmp_path, "a.zip", b"tls")
            await folder.upload("in", "a.zip", source, digest)
            assert [e.name for e in await folder.list("in")] == ["a.zip"]
        finally:
            await folder.close()


async def test_webdav_server_certificate_not_trusted_is_permanent(tmp_path: Path) -> None:
    """A server whose certificate does not chain to ca_file is refused; retrying cannot help."""
    ca = CertAuthority.create(tmp_path / "ca")
    other = CertAuthority.create(tmp_path / "other", "Other CA")
    server_cert = other.issue(tmp_path / "server", "archiv", server=True)
    (tmp_path / "dav").mkdir()
    with webdav_server(
        tmp_path / "dav", certificate=server_cert.certificate, private_key=server_cert.key
    ) as server:
        folder = open_folder(webdav_config_for_url(server.url, ca_file=ca.certificate))
        try:
            with pytest.raises(PermanentDeliveryError, match=r"does not trust.*ca_file"):
                await folder.list("")
        finally:
            await folder.close()


def test_webdav_tls_file_that_is_missing_is_a_config_error(tmp_path: Path) -> None:
    """A ca_file that does not exist is reported when the folder is opened."""
    with pytest.raises(ConfigError, match="ca_file"):
        open_folder(
            webdav_config_for_url("https://archiv.example/dav/", ca_file=tmp_path / "no.pem")
        )
