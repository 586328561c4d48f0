"""Download xdomea schemas from XRepository (or a mirror) and install them verified.

A download is only a source for ``SchemaStore.import_source``: the ZIP is
streamed into a temporary file (with a size cap enforced while streaming),
installed by matching every file against its pinned SHA-256, and deleted again,
whatever happened. So a download can never install a file the catalog does not
pin, and a version is installed completely or not at all.

The URL comes from a template with the fields ``{version}`` and
``{xrepository_id}``: the ``url_template`` argument, else ``$IKZ_SCHEMA_FETCH_URL``,
else XRepository (``DEFAULT_URL_TEMPLATE``). Only http and https are accepted.
Every network, HTTP and file problem is raised as ``SchemaSourceError`` naming
the URL and pointing to a mirror or to ``ikz-gateway schemas import``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import zipfile
from pathlib import Path

import aiohttp
import structlog
import yarl

from gateway.errors import SchemaError, SchemaSourceError
from schemas import catalog
from schemas.store import ImportReport, SchemaStore

DEFAULT_URL_TEMPLATE = "https://www.xrepository.de/api/xrepository/{xrepository_id}:xmlschema"
URL_TEMPLATE_ENV = "IKZ_SCHEMA_FETCH_URL"
#: A download larger than this is refused while streaming; the official ZIPs are < 5 MiB.
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT = 60.0

_CHUNK_BYTES = 64 * 1024
_HINT = "set IKZ_SCHEMA_FETCH_URL to a mirror or use 'ikz-gateway schemas import DIR|ZIP'"

log = structlog.get_logger(__name__)


def download_url(version: str, url_template: str | None = None) -> str:
    """The URL a version's schema ZIP is downloaded from.

    Args:
        version: A catalog version, e.g. ``"3.1.0"``.
        url_template: Template with ``{version}`` and ``{xrepository_id}``; default
            ``$IKZ_SCHEMA_FETCH_URL`` or ``DEFAULT_URL_TEMPLATE``.

    Returns:
        The formatted URL.

    Raises:
        SchemaError: the version is not in the catalog.
        SchemaSourceError: the template does not format or yields no http(s) URL.
    """
    entry = _catalog_entry(version)
    template = url_template or os.environ.get(URL_TEMPLATE_ENV) or DEFAULT_URL_TEMPLATE
    try:
        url = template.format(version=version, xrepository_id=entry.xrepository_id)
    except (KeyError, IndexError, ValueError) as exc:
        raise SchemaSourceError(
            f"schema download URL template {template!r} is invalid ({exc!r}); it may use "
            "only the fields {version} and {xrepository_id}"
        ) from exc
    try:
        parsed = yarl.URL(url)
    except ValueError as exc:
        raise SchemaSourceError(f"schema download URL {url!r} is invalid ({exc})") from exc
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise SchemaSourceError(
            f"schema download URL {url!r} is not an http or https URL; to install from a "
            "file use 'ikz-gateway schemas import DIR|ZIP'"
        )
    return url


async def fetch(
    version: str,
    store: SchemaStore,
    *,
    url_template: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    download_dir: Path | None = None,
) -> ImportReport:
    """Download one version's schema ZIP and install it after verifying every file.

    Other versions the ZIP happens to hold completely are installed as well.

    Args:
        version: The catalog version to fetch, e.g. ``"3.1.0"``.
        store: The store to install into; must be writable.
        url_template: See ``download_url``.
        timeout: Seconds the whole download may take.
        max_bytes: Largest accepted download; larger ones are aborted while streaming.
        download_dir: Folder for the temporary ZIP (default: the system temp folder).
            The file is removed before this function returns or raises.

    Returns:
        What was installed; ``source`` is the URL.

    Raises:
        SchemaError: the version is unknown, or writing into the store failed.
        SchemaSourceError: the store is the read-only ``IKZ_SCHEMA_DIR``; the URL is
            unusable; the download failed, is no ZIP, is too large, or does not hold
            the version with the pinned SHA-256 of every file.
    """
    url = download_url(version, url_template)
    _check_writable(store)
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, not {max_bytes}")
    try:
        fd, name = tempfile.mkstemp(prefix=".ikz-schemas-", suffix=".zip", dir=download_dir)
    except OSError as exc:
        raise SchemaSourceError(
            f"cannot create a temporary file for the download ({exc.strerror or exc})",
            where=str(download_dir or tempfile.gettempdir()),
        ) from exc
    os.close(fd)
    zip_path = Path(name)
    try:
        size, content_type = await _download(url, zip_path, timeout=timeout, max_bytes=max_bytes)
        log.info("schema_download_finished", version=version, url=url, bytes=size)
        if not zipfile.is_zipfile(zip_path):
            raise SchemaSourceError(
                f"the answer from {url} is not a ZIP file ({size} bytes, Content-Type "
                f"{content_type or 'not set'}); {_HINT}"
            )
        report = await asyncio.to_thread(_install, store, zip_path, url)
    finally:
        zip_path.unlink(missing_ok=True)
    if version not in report.installed:
        raise SchemaSourceError(
            f"the ZIP from {url} holds xdomea {', '.join(report.installed)} (installed) "
            f"but not {version} ({report.skipped.get(version, 'not in the source')}); {_HINT}"
        )
    log.info("schemas_installed", version=version, url=url, installed=report.installed)
    return report


async def fetch_all(
    store: SchemaStore,
    *,
    url_template: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    download_dir: Path | None = None,
) -> list[ImportReport]:
    """Fetch every catalog version, one download after the other.

    A version that an earlier download of this call already installed is not
    downloaded again. A failed version does not stop the others.

    Args:
        store: The store to install into; must be writable.
        url_template: See ``download_url``.
        timeout: Seconds each download may take.
        max_bytes: Largest accepted download, per download.
        download_dir: Folder for the temporary ZIPs, see ``fetch``.

    Returns:
        One report per download made.

    Raises:
        SchemaError: writing into the store failed.
        SchemaSourceError: the store is the read-only ``IKZ_SCHEMA_DIR``, the template
            is invalid, or at least one version could not be fetched; the message
            names what was installed and what failed.
    """
    for version in catalog.versions():
        download_url(version, url_template)  # a bad template fails once, up front
    _check_writable(store)
    reports: list[ImportReport] = []
    installed: set[str] = set()
    failures: dict[str, str] = {}
    for version in catalog.versions():
        if version in installed:
            continue
        try:
            report = await fetch(
                version,
                store,
                url_template=url_template,
                timeout=timeout,
                max_bytes=max_bytes,
                download_dir=download_dir,
            )
        except SchemaSourceError as exc:
            # The advice is the same for every version; say it once at the end.
            failures[version] = str(exc).removesuffix(f"; {_HINT}")
            continue
        reports.append(report)
        installed.update(report.installed)
    if failures:
        done = ", ".join(sorted(installed)) or "nothing"
        raise SchemaSourceError(
            f"installed {done}; failed: "
            + "; ".join(f"{version}: {why}" for version, why in failures.items())
            + f"; {_HINT}"
        )
    return reports


def _catalog_entry(version: str) -> catalog.XdomeaVersion:
    try:
        return catalog.get(version)
    except KeyError:
        raise SchemaError(
            f"unknown xdomea version {version}; known: {', '.join(catalog.versions())}"
        ) from None


def _check_writable(store: SchemaStore) -> None:
    """Refuse before downloading what ``import_source`` would refuse afterwards."""
    if not store.writable:
        raise SchemaSourceError(
            f"IKZ_SCHEMA_DIR={store.root} is used as is and never written to; unset it "
            "to fetch into the user cache"
        )


async def _download(
    url: str, target: Path, *, timeout: float, max_bytes: int
) -> tuple[int, str | None]:
    """Stream the body of ``url`` into the file ``target``, at most ``max_bytes`` of it.

    Returns:
        The number of bytes written and the response's Content-Type.

    Raises:
        SchemaSourceError: any connection, HTTP, size or write problem.
    """
    too_large = (
        f"the download from {url} is larger than {max_bytes} bytes, the limit for a "
        f"schema ZIP; {_HINT}"
    )
    received = 0
    try:
        async with (
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=timeout), trust_env=True
            ) as session,
            session.get(url) as response,
        ):
            if response.status != 200:
                raise SchemaSourceError(
                    f"{url} answered HTTP {response.status} {response.reason or ''}".rstrip()
                    + f"; {_HINT}"
                )
            if response.content_length is not None and response.content_length > max_bytes:
                raise SchemaSourceError(too_large)
            with target.open("wb") as sink:
                async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
                    received += len(chunk)
                    if received > max_bytes:
                        raise SchemaSourceError(too_large)
                    sink.write(chunk)
            return received, response.headers.get("Content-Type")
    except TimeoutError as exc:
        raise SchemaSourceError(
            f"no complete answer from {url} within {timeout:g} s; {_HINT}"
        ) from exc
    except aiohttp.ClientConnectorError as exc:
        raise SchemaSourceError(
            f"cannot connect to {url} ({exc.os_error.strerror or exc.os_error}); {_HINT}"
        ) from exc
    except aiohttp.ClientError as exc:
        raise SchemaSourceError(
            f"download from {url} failed ({type(exc).__name__}: {exc}); {_HINT}"
        ) from exc
    except OSError as exc:
        raise SchemaSourceError(
            f"cannot write the download from {url} ({exc.strerror or exc})",
            where=str(target),
        ) from exc


def _install(store: SchemaStore, zip_path: Path, url: str) -> ImportReport:
    """Install a downloaded ZIP, reporting problems against the URL, not the temp file."""
    try:
        report = store.import_source(zip_path)
    except SchemaSourceError as exc:
        raise SchemaSourceError(
            exc.message.replace(str(zip_path), f"the ZIP from {url}") + f"; {_HINT}"
        ) from exc
    report.source = url
    return report
