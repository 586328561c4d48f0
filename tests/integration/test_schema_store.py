"""Installing, verifying and compiling schemas in a store rooted in tmp_path."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from lxml import etree

from gateway.errors import SchemaError, SchemaIntegrityError, SchemaNotInstalled, SchemaSourceError
from schemas import loader
from schemas.loader import SchemaLoader
from schemas.store import SchemaStore
from tests.conftest import SHARED_SAMPLES, SHARED_XDOMEA, VERSIONS
from tests.schema_sources import flat, nested, shared_files, tampered, write_zip

ONLY_310 = "3.1.0/xdomea-Baukasten.xsd"
XOEV_CODE = "xoev/xoev-code.xsd"
XS = "http://www.w3.org/2001/XMLSchema"


@pytest.fixture
def store(tmp_path: Path) -> SchemaStore:
    """An empty, writable store (the environment's IKZ_SCHEMA_DIR is the read-only shared copy)."""
    return SchemaStore(tmp_path / "cache")


@pytest.fixture
def installed(store: SchemaStore) -> SchemaStore:
    """A store with every version imported from ../shared/xdomea."""
    store.import_source(SHARED_XDOMEA)
    return store


def _leftovers(store: SchemaStore) -> list[str]:
    """Staging or backup folders an import left in the store root."""
    return sorted(p.name for p in store.root.iterdir() if p.name.startswith("."))


def test_import_from_directory_installs_every_version_verified(store: SchemaStore) -> None:
    """Importing the shared schema folder installs all four versions, each verified."""
    report = store.import_source(SHARED_XDOMEA)

    assert report.installed == list(VERSIONS)
    assert report.skipped == {}
    assert all(store.status(v).verified for v in VERSIONS)
    assert store.installed_versions() == list(VERSIONS)
    assert _leftovers(store) == []


def test_import_from_nested_zip_installs_every_version(store: SchemaStore, tmp_path: Path) -> None:
    """A ZIP with every file two folders deeper than the schema root installs all versions."""
    source = write_zip(tmp_path / "release.zip", nested(shared_files()))

    report = store.import_source(source)

    assert report.installed == list(VERSIONS)
    assert all(store.status(v).verified for v in VERSIONS)


def test_import_from_flat_zip_installs_its_one_version(store: SchemaStore, tmp_path: Path) -> None:
    """A ZIP of one version's files without any folders installs exactly that version."""
    source = write_zip(tmp_path / "flat.zip", flat(shared_files(["2.4.0"])))

    report = store.import_source(source)

    assert report.installed == ["2.4.0"]
    assert report.skipped == {v: "not in the source" for v in VERSIONS if v != "2.4.0"}
    assert store.status("2.4.0").verified
    assert not store.status("3.1.0").installed


def test_zip_with_one_changed_byte_skips_the_version_holding_that_file(
    store: SchemaStore, tmp_path: Path
) -> None:
    """One changed byte in a 3.1.0 file keeps 3.1.0 out, names the file, and installs the rest."""
    source = write_zip(tmp_path / "bad.zip", nested(tampered(shared_files(), ONLY_310)))

    report = store.import_source(source)

    assert report.installed == ["2.3.0", "2.4.0", "3.0.0"]
    assert report.skipped == {"3.1.0": f"missing or different: {ONLY_310}"}
    assert not store.status("3.1.0").installed
    assert not (store.root / "3.1.0").exists()
    assert _leftovers(store) == []


def test_zip_with_changed_shared_file_installs_no_version(
    store: SchemaStore, tmp_path: Path
) -> None:
    """One changed byte in the XÖV code file, which every version imports, installs nothing."""
    source = write_zip(tmp_path / "bad.zip", nested(tampered(shared_files(), XOEV_CODE)))

    with pytest.raises(SchemaSourceError, match=f"no complete xdomea version.*{XOEV_CODE}"):
        store.import_source(source)

    assert store.installed_versions() == []
    assert not store.root.exists()


def _empty_dir(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _foreign_xsd_dir(tmp_path: Path) -> Path:
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "xdomea.xsd").write_text(f'<xs:schema xmlns:xs="{XS}"/>')
    return tmp_path / "foreign"


def _text_file(tmp_path: Path) -> Path:
    (tmp_path / "schemas.zip").write_text("this is no ZIP archive")
    return tmp_path / "schemas.zip"


def _zip_without_xsd(tmp_path: Path) -> Path:
    return write_zip(tmp_path / "docs.zip", {"README.txt": b"no schemas here"})


def _truncated_zip(tmp_path: Path) -> Path:
    data = write_zip(tmp_path / "full.zip", shared_files(["3.1.0"])).read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.zip"


@pytest.mark.parametrize(
    ("make_source", "reason"),
    [
        (_empty_dir, "no complete xdomea version"),
        (_foreign_xsd_dir, "no complete xdomea version"),
        (_text_file, "neither a directory nor a ZIP file"),
        (_zip_without_xsd, "no complete xdomea version"),
        (_truncated_zip, "neither a directory nor a ZIP file"),
        (lambda tmp_path: tmp_path / "nowhere", "does not exist"),
    ],
    ids=["empty-dir", "foreign-xsd", "text-file", "zip-without-xsd", "truncated-zip", "missing"],
)
def test_source_without_usable_schemas_raises(
    store: SchemaStore, tmp_path: Path, make_source: Callable[[Path], Path], reason: str
) -> None:
    """A source that holds no complete pinned version is refused with the reason."""
    source = make_source(tmp_path)

    with pytest.raises(SchemaSourceError, match=reason) as caught:
        store.import_source(source)

    assert str(source) in str(caught.value)
    assert not store.root.exists()


def test_import_into_explicit_schema_dir_is_refused() -> None:
    """The store named by IKZ_SCHEMA_DIR is read-only, so importing into it is refused."""
    store = SchemaStore()
    assert store.root == SHARED_XDOMEA

    with pytest.raises(SchemaSourceError, match=r"IKZ_SCHEMA_DIR=.* never written to"):
        store.import_source(SHARED_XDOMEA)


def test_explicit_schema_dir_given_relatively_is_still_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IKZ_SCHEMA_DIR as a relative path protects the same folder named absolutely."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IKZ_SCHEMA_DIR", "schemas")

    store = SchemaStore(tmp_path / "schemas")

    assert not store.writable
    with pytest.raises(SchemaSourceError, match="never written to"):
        store.import_source(SHARED_XDOMEA)
    assert not (tmp_path / "schemas").exists()


def test_reimport_replaces_installed_version_without_leftovers(installed: SchemaStore) -> None:
    """Importing over an installed store keeps every version verified and leaves no staging."""
    report = installed.import_source(SHARED_XDOMEA)

    assert report.installed == list(VERSIONS)
    assert installed.installed_versions() == list(VERSIONS)
    assert _leftovers(installed) == []


def test_tampered_installed_file_makes_load_raise_naming_the_file(installed: SchemaStore) -> None:
    """A file changed after installation makes load raise SchemaIntegrityError naming it."""
    target = installed.root / ONLY_310
    target.write_bytes(target.read_bytes().replace(b"</xs:schema>", b"</xs:schema>\n"))

    with pytest.raises(SchemaIntegrityError) as caught:
        installed.load("3.1.0")

    assert caught.value.where == str(target)
    assert ONLY_310 in str(caught.value)


def test_tampered_installed_file_is_reported_by_status(installed: SchemaStore) -> None:
    """status() marks a version with a changed file as installed but not verified."""
    target = installed.root / ONLY_310
    target.write_bytes(target.read_bytes() + b"\n")

    status = installed.status("3.1.0")

    assert status.installed and not status.verified
    assert status.problems == (f"{ONLY_310}: SHA-256 differs from the pinned value",)
    assert installed.installed_versions() == ["2.3.0", "2.4.0", "3.0.0"]


def test_missing_installed_file_makes_load_raise_naming_the_file(installed: SchemaStore) -> None:
    """A file deleted after installation makes load raise SchemaIntegrityError naming it."""
    (installed.root / ONLY_310).unlink()

    with pytest.raises(SchemaIntegrityError, match=f"incompletely.*{ONLY_310}"):
        installed.load("3.1.0")


def test_load_of_version_not_installed_raises_not_installed(store: SchemaStore) -> None:
    """Loading from an empty store raises SchemaNotInstalled with the ways to install."""
    with pytest.raises(SchemaNotInstalled, match=r"schemas import DIR\|ZIP.*schemas fetch"):
        store.load("3.0.0")


def test_version_beside_another_is_not_installed_by_the_shared_files(
    store: SchemaStore, tmp_path: Path
) -> None:
    """The XÖV files installed with 2.4.0 do not make 3.1.0 count as (damaged) installed."""
    store.import_source(write_zip(tmp_path / "flat.zip", flat(shared_files(["2.4.0"]))))

    assert store.status("3.1.0").installed is False
    with pytest.raises(SchemaNotInstalled):
        store.load("3.1.0")


def test_loader_validates_a_sample_with_schemas_from_the_store(installed: SchemaStore) -> None:
    """A loader over an imported store compiles the 3.0.0 schema and accepts an official sample."""
    sample = etree.parse(SHARED_SAMPLES / "xdomea-3.0.0" / "xx_Aussonderung.Aussonderung.0503.xml")

    schema = SchemaLoader(installed).schema("3.0.0", "Aussonderung")

    assert schema.validate(sample), schema.error_log


def _importing(location: str) -> dict[str, bytes]:
    """An in-memory schema set whose entry point imports ``location``."""
    entry = (
        f'<xs:schema xmlns:xs="{XS}" targetNamespace="urn:test">'
        f'<xs:import namespace="urn:xoev-de:xoev:code:version1_1" schemaLocation="{location}"/>'
        '<xs:element name="m"/></xs:schema>'
    )
    return {"test/main.xsd": entry.encode()}


@pytest.mark.parametrize(
    "location",
    [
        "http://example.invalid/x.xsd",
        str(SHARED_XDOMEA / XOEV_CODE),
        (SHARED_XDOMEA / XOEV_CODE).as_uri(),
        "../../../../../../../../" + str(SHARED_XDOMEA / XOEV_CODE).lstrip("/"),
    ],
    ids=["http", "absolute-path", "file-uri", "relative-escape"],
)
def test_loader_refuses_schema_location_outside_the_catalog(location: str) -> None:
    """An import of a location outside the verified files fails to compile with a SchemaError."""
    with pytest.raises(SchemaError, match="not part of the installed catalog") as caught:
        loader._compile("test", _importing(location), "test/main.xsd")

    assert "test/main.xsd" in str(caught.value)


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Serves a valid schema to anyone who asks, and remembers who asked."""

    requests: ClassVar[list[str]]

    def do_GET(self) -> None:
        """Answer with a small valid schema."""
        self.requests.append(self.path)
        body = f'<xs:schema xmlns:xs="{XS}" targetNamespace="urn:x"/>'.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@pytest.fixture
def schema_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that would serve a schema; yields its base URL and request log."""
    requests: list[str] = []
    handler = type("Handler", (_RecordingHandler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_loader_never_opens_the_network(schema_server: tuple[str, list[str]]) -> None:
    """A schema location on a reachable server is refused without a single request to it."""
    base, requests = schema_server

    with pytest.raises(SchemaError, match="not part of the installed catalog"):
        loader._compile("test", _importing(f"{base}/x.xsd"), "test/main.xsd")

    assert requests == []
