"""Downloading schemas from a local XRepository stand-in on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from gateway.errors import SchemaError, SchemaSourceError
from schemas import catalog, fetch
from schemas.store import SchemaStore
from tests.conftest import VERSIONS
from tests.schema_sources import nested, shared_files, tampered, zip_bytes

XREPOSITORY_PATH = "/api/xrepository/{xrepository_id}:xmlschema"
HINT = "set IKZ_SCHEMA_FETCH_URL to a mirror or use 'ikz-gateway schemas import DIR|ZIP'"


@dataclass
class Answer:
    """What the stand-in answers for one path."""

    body: bytes
    status: int = 200
    content_type: str = "application/zip"
    #: Stream the body in chunks without Content-Length.
    chunked: bool = False
    #: Wait for the test to end before answering.
    hang: bool = False


@dataclass
class Mirror:
    """A loopback XRepository stand-in; unknown paths answer 404."""

    base: str
    answers: dict[str, Answer] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def template(self) -> str:
        """URL template pointing at this server, laid out like XRepository's."""
        return self.base + XREPOSITORY_PATH

    def path(self, version: str) -> str:
        """The request path the template produces for ``version``."""
        return XREPOSITORY_PATH.format(xrepository_id=catalog.get(version).xrepository_id)

    def url(self, version: str) -> str:
        """The full URL the template produces for ``version``."""
        return self.base + self.path(version)

    def serve(self, version: str, answer: Answer) -> None:
        """Answer ``answer`` to requests for ``version``'s ZIP."""
        self.answers[self.path(version)] = answer

    def serve_schemas(self, version: str, files: dict[str, bytes] | None = None) -> None:
        """Serve a release-like ZIP of ``version`` (or of ``files``) for ``version``."""
        self.serve(version, Answer(zip_bytes(nested(files or shared_files([version])))))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request as configured."""
        self.requests.append(request.path)
        answer = self.answers.get(request.path)
        if answer is None:
            raise web.HTTPNotFound(text="no such artefact")
        if answer.hang:
            await self.released.wait()
        if not answer.chunked:
            return web.Response(
                body=answer.body, status=answer.status, content_type=answer.content_type
            )
        response = web.StreamResponse(status=answer.status)
        response.content_type = answer.content_type
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(answer.body), 64 * 1024):
            await response.write(answer.body[start : start + 64 * 1024])
        await response.write_eof()
        return response


@pytest.fixture
async def mirror() -> AsyncIterator[Mirror]:
    """A running stand-in on 127.0.0.1 with nothing configured yet."""
    app = web.Application()
    holder: list[Mirror] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        return await holder[0].handle(request)

    app.router.add_get("/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.append(Mirror(base=str(server.make_url("")).rstrip("/")))
    try:
        yield holder[0]
    finally:
        holder[0].released.set()
        await server.close()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """fetch honours proxy variables; the loopback stand-in must be reached directly."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def store(tmp_path: Path) -> SchemaStore:
    """An empty, writable store in tmp_path."""
    return SchemaStore(tmp_path / "cache")


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    """The folder fetch writes its temporary ZIP to."""
    path = tmp_path / "downloads"
    path.mkdir()
    return path


def _assert_nothing_left(downloads: Path, store: SchemaStore) -> None:
    """No temporary download, and nothing at all in the store."""
    assert list(downloads.iterdir()) == []
    assert not store.root.exists() or list(store.root.iterdir()) == []


async def test_fetch_installs_the_version_verified(
    mirror: Mirror, store: SchemaStore, downloads: Path
) -> None:
    """A release ZIP served at the templated URL is downloaded, installed and verified."""
    mirror.serve_schemas("3.1.0")

    report = await fetch.fetch("3.1.0", store, url_template=mirror.template, download_dir=downloads)

    assert report.installed == ["3.1.0"]
    assert report.source == mirror.url("3.1.0")
    assert mirror.requests == [mirror.path("3.1.0")]
    assert store.status("3.1.0").verified
    assert list(downloads.iterdir()) == []
    assert sorted(p.name for p in store.root.iterdir()) == ["3.1.0", "xoev"]


async def test_fetch_takes_the_url_template_from_the_environment(
    mirror: Mirror, store: SchemaStore, downloads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a template argument, fetch downloads from $IKZ_SCHEMA_FETCH_URL."""
    monkeypatch.setenv("IKZ_SCHEMA_FETCH_URL", mirror.template)
    mirror.serve_schemas("2.3.0")

    report = await fetch.fetch("2.3.0", store, download_dir=downloads)

    assert report.installed == ["2.3.0"]
    assert mirror.requests == [mirror.path("2.3.0")]


def test_default_url_is_the_xrepository_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a template or environment setting, the URL is XRepository's for the version."""
    monkeypatch.delenv("IKZ_SCHEMA_FETCH_URL", raising=False)

    assert fetch.download_url("3.1.0") == (
        "https://www.xrepository.de/api/xrepository/"
        "urn:xoev-de:xdomea:kosit:standard:xdomea_3.1.0:xmlschema"
    )


def test_template_may_use_the_version_number() -> None:
    """A mirror template may name the plain version number instead of the XRepository id."""
    url = fetch.download_url("2.4.0", "https://mirror.example/xdomea-{version}.zip")

    assert url == "https://mirror.example/xdomea-2.4.0.zip"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("file:///srv/xdomea-{version}.zip", "not an http or https URL"),
        ("ftp://mirror.example/{version}.zip", "not an http or https URL"),
        ("/srv/xdomea-{version}.zip", "not an http or https URL"),
        ("https://mirror.example/{release}.zip", "only the fields"),
    ],
    ids=["file", "ftp", "bare-path", "unknown-field"],
)
async def test_unusable_url_template_is_refused_before_any_download(
    store: SchemaStore, template: str, reason: str
) -> None:
    """A template that yields no http(s) URL raises SchemaSourceError without connecting."""
    with pytest.raises(SchemaSourceError, match=reason):
        await fetch.fetch("3.1.0", store, url_template=template)

    assert not store.root.exists()


async def test_unknown_version_is_refused(store: SchemaStore, mirror: Mirror) -> None:
    """A version the catalog does not know raises SchemaError listing the known ones."""
    with pytest.raises(SchemaError, match=r"unknown xdomea version 9\.9\.9; known: 2\.3\.0"):
        await fetch.fetch("9.9.9", store, url_template=mirror.template)

    assert mirror.requests == []


async def test_fetch_into_explicit_schema_dir_is_refused_before_downloading(
    mirror: Mirror,
) -> None:
    """The read-only IKZ_SCHEMA_DIR store refuses a fetch without a request being made."""
    mirror.serve_schemas("3.1.0")

    with pytest.raises(SchemaSourceError, match="never written to"):
        await fetch.fetch("3.1.0", SchemaStore(), url_template=mirror.template)

    assert mirror.requests == []


async def test_fetch_of_404_raises_with_url_and_status(
    mirror: Mirror, store: SchemaStore, downloads: Path
) -> None:
    """A 404 answer raises SchemaSourceError naming URL, status and the alternatives."""
    with pytest.raises(SchemaSourceError) as caught:
        await fetch.fetch("3.1.0", store, url_template=mirror.template, download_dir=downloads)

    assert str(caught.value) == f"{mirror.url('3.1.0')} answered HTTP 404 Not Found; {HINT}"
    _assert_nothing_left(downloads, store)


async def test_fetch_of_non_zip_body_raises(
    mirror: Mirror, store: SchemaStore, downloads: Path
) -> None:
    """An HTML page instead of a ZIP raises SchemaSourceError saying what arrived."""
    page = b"<html><body>Wartungsarbeiten</body></html>"
    mirror.serve("3.1.0", Answer(page, content_type="text/html"))

    with pytest.raises(SchemaSourceError) as caught:
        await fetch.fetch("3.1.0", store, url_template=mirror.template, download_dir=downloads)

    assert f"the answer from {mirror.url('3.1.0')} is not a ZIP file" in str(caught.value)
    assert f"{len(page)} bytes, Content-Type text/html" in str(caught.value)
    _assert_nothing_left(downloads, store)


async def test_fetch_of_zip_with_tampered_file_raises_naming_it(
    mirror: Mirror, store: SchemaStore, downloads: Path
) -> None:
    """A ZIP with one changed byte installs nothing and names the file and the URL."""
    changed = "3.1.0/xdomea-Nachrichten-AbgabeDurchfuehren.xsd"
    mirror.serve_schemas("3.1.0", tampered(shared_files(["3.1.0"]), changed))

    with pytest.raises(SchemaSourceError) as caught:
        await fetch.fetch("3.1.0", store, url_template=mirror.template, download_dir=downloads)

    message = str(caught.value)
    assert f"pinned SHA-256 values in the ZIP from {mirror.url('3.1.0')}" in message
    assert f"3.1.0: missing or different: {changed})" in message
    assert str(downloads) not in message
    _assert_nothing_left(downloads, store)


@pytest.mark.parametrize("chunked", [False, True], ids=["announced", "streamed"])
async def test_fetch_of_body_larger_than_max_bytes_raises(
    mirror: Mirror, store: SchemaStore, downloads: Path, chunked: bool
) -> None:
    """A download one byte over max_bytes is aborted, whether its length is announced or not."""
    body = zip_bytes(nested(shared_files(["3.1.0"])))
    limit = len(body) - 1
    mirror.serve("3.1.0", Answer(body, chunked=chunked))

    with pytest.raises(SchemaSourceError, match=f"larger than {limit} bytes") as caught:
        await fetch.fetch(
            "3.1.0", store, url_template=mirror.template, max_bytes=limit, download_dir=downloads
        )

    assert mirror.url("3.1.0") in str(caught.value)
    _assert_nothing_left(downloads, store)


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_fetch_from_server_that_is_down_raises(store: SchemaStore, downloads: Path) -> None:
    """A refused connection raises SchemaSourceError naming the URL and the alternatives."""
    template = f"http://127.0.0.1:{_unused_port()}{XREPOSITORY_PATH}"

    with pytest.raises(SchemaSourceError) as caught:
        await fetch.fetch("3.1.0", store, url_template=template, download_dir=downloads)

    message = str(caught.value)
    assert message.startswith(f"cannot connect to {fetch.download_url('3.1.0', template)} (")
    assert message.endswith(HINT)
    _assert_nothing_left(downloads, store)


async def test_fetch_from_server_that_does_not_answer_times_out(
    mirror: Mirror, store: SchemaStore, downloads: Path
) -> None:
    """A server that never answers raises SchemaSourceError after the timeout."""
    mirror.serve("3.1.0", Answer(b"", hang=True))

    with pytest.raises(SchemaSourceError, match=r"no complete answer from .* within 0.2 s"):
        await fetch.fetch(
            "3.1.0", store, url_template=mirror.template, timeout=0.2, download_dir=downloads
        )

    _assert_nothing_left(downloads, store)


async def test_fetch_of_zip_without_the_requested_version_raises(
    mirror: Mirror, store: SchemaStore, downloads: Path
) -> None:
    """A ZIP that installs 3.0.0 when 3.1.0 was asked for is an error naming both."""
    mirror.serve("3.1.0", Answer(zip_bytes(nested(shared_files(["3.0.0"])))))

    with pytest.raises(SchemaSourceError) as caught:
        await fetch.fetch("3.1.0", store, url_template=mirror.template, download_dir=downloads)

    assert str(caught.value) == (
        f"the ZIP from {mirror.url('3.1.0')} holds xdomea 3.0.0 (installed) but not 3.1.0 "
        f"(not in the source); {HINT}"
    )
    assert not store.status("3.1.0").installed
    assert list(downloads.iterdir()) == []


async def test_fetch_cleans_up_in_the_system_temp_dir_by_default(
    mirror: Mirror, store: SchemaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without download_dir the ZIP goes to the system temp folder and is removed from there."""
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    mirror.serve("3.1.0", Answer(b"not a zip"))

    with pytest.raises(SchemaSourceError, match="not a ZIP file"):
        await fetch.fetch("3.1.0", store, url_template=mirror.template)

    assert list(system_tmp.iterdir()) == []


async def test_fetch_logs_download_and_installation(
    mirror: Mirror, store: SchemaStore, downloads: Path
) -> None:
    """A successful fetch logs the finished download and the installed versions."""
    mirror.serve_schemas("3.0.0")

    with capture_logs() as logs:
        await fetch.fetch("3.0.0", store, url_template=mirror.template, download_dir=downloads)

    assert [entry["event"] for entry in logs] == ["schema_download_finished", "schemas_installed"]
    assert logs[1]["installed"] == ["3.0.0"]
    assert logs[0]["url"] == mirror.url("3.0.0")


async def test_fetch_all_installs_every_version(
    mirror: Mirror, store: SchemaStore, downloads: Path
) -> None:
    """fetch_all downloads each version's ZIP once and installs all four verified."""
    for version in VERSIONS:
        mirror.serve_schemas(version)

    reports = await fetch.fetch_all(store, url_template=mirror.template, download_dir=downloads)

    assert [r.installed for r in reports] == [[v] for v in VERSIONS]
    assert mirror.requests == [mirror.path(v) for v in VERSIONS]
    assert store.installed_versions() == list(VERSIONS)
    assert list(downloads.iterdir()) == []


async def test_fetch_all_skips_versions_an_earlier_download_installed(
    mirror: Mirror, store: SchemaStore, downloads: Path
) -> None:
    """A first ZIP that holds every version makes the other downloads unnecessary."""
    mirror.serve_schemas("2.3.0", shared_files())

    reports = await fetch.fetch_all(store, url_template=mirror.template, download_dir=downloads)

    assert [r.installed for r in reports] == [list(VERSIONS)]
    assert mirror.requests == [mirror.path("2.3.0")]


async def test_fetch_all_names_installed_and_failed_versions(
    mirror: Mirror, store: SchemaStore, downloads: Path
) -> None:
    """When some downloads fail, fetch_all installs the rest and raises naming both."""
    mirror.serve_schemas("2.4.0")
    mirror.serve_schemas("3.1.0")

    with pytest.raises(SchemaSourceError) as caught:
        await fetch.fetch_all(store, url_template=mirror.template, download_dir=downloads)

    assert str(caught.value) == (
        f"installed 2.4.0, 3.1.0; failed: 2.3.0: {mirror.url('2.3.0')} answered HTTP 404 "
        f"Not Found; 3.0.0: {mirror.url('3.0.0')} answered HTTP 404 Not Found; {HINT}"
    )
    assert store.installed_versions() == ["2.4.0", "3.1.0"]
    assert list(downloads.iterdir()) == []
