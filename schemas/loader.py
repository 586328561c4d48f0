"""Compiled xdomea schemas, built only from verified bytes, never from the network.

Every schema document is parsed from the bytes ``SchemaStore.load`` verified, under
a private base URL (``ikz-schema:///<version>/<file>``). Includes and imports
resolve relative to that base, and ``CatalogResolver`` answers them from the same
verified bytes; any other location is refused. So validation can neither reach
the network nor read a file that was swapped after verification.

Compiled schemas are cached per thread: an lxml ``XMLSchema`` keeps its error log
on the object, so one instance must not validate in two threads at once.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import structlog
from lxml import etree

from gateway.errors import SchemaError
from schemas import catalog
from schemas.store import SchemaStore

log = structlog.get_logger(__name__)

BASE = "ikz-schema:///"
_XS = "{http://www.w3.org/2001/XMLSchema}"
_MESSAGE_ELEMENT = re.compile(r"^[A-Za-z]+\.[A-Za-z]+\.\d{4}$")


class CatalogResolver(etree.Resolver):
    """Resolves schema locations to verified in-memory files; refuses everything else."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__()
        self._files = files
        #: Locations refused so far. libxml2 swallows the resolver's exception and
        #: reports only "failed to parse", so the caller reads the reason from here.
        self.refused: list[str] = []

    # lxml calls resolve() with a context argument; lxml-stubs omit it.
    def resolve(  # type: ignore[override]
        self, system_url: str, public_id: str, context: Any
    ) -> Any:
        """Answer ``system_url`` from the verified files, or refuse it."""
        if system_url.startswith(BASE):
            rel = system_url[len(BASE) :]
            data = self._files.get(rel)
            if data is not None:
                return self.resolve_string(data, context, base_url=system_url)
        self.refused.append(system_url)
        raise SchemaError(
            f"schema location {system_url!r} is not part of the installed catalog; "
            "the gateway never loads schemas from elsewhere"
        )


def _schema_parser(resolver: CatalogResolver) -> etree.XMLParser:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    parser.resolvers.add(resolver)
    return parser


def _compile(version: str, files: dict[str, bytes], path: str) -> etree.XMLSchema:
    """Compile the schema whose entry point is ``files[path]``, resolving only within ``files``.

    Raises:
        SchemaError: the schema refers to a location outside ``files`` or does not compile.
    """
    resolver = CatalogResolver(files)
    try:
        doc = etree.fromstring(files[path], _schema_parser(resolver), base_url=BASE + path)
        return etree.XMLSchema(doc)
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        if resolver.refused:
            raise SchemaError(
                f"xdomea {version} schema {path} refers to "
                + ", ".join(repr(url) for url in resolver.refused)
                + ", which is not part of the installed catalog; the gateway never loads "
                "schemas from elsewhere"
            ) from exc
        error = (
            _SpuriousIncludeFailure if "Failed to load the document" in str(exc) else SchemaError
        )
        raise error(f"xdomea {version} schema {path} does not compile: {exc}") from exc


#: Compiles tried before a failure to load an include counts as real.
_COMPILE_ATTEMPTS = 3


def _compile_retrying(version: str, files: dict[str, bytes], path: str) -> etree.XMLSchema:
    """``_compile``, tried again when libxml2 fails to load an include it was handed.

    lxml installs its resolver by swapping libxml2's process-wide document loader
    for the duration of a schema compile, and other lxml work in another thread
    (seen: the dmsin simulator compiling WSDL types beside the gateway; also once
    under load in a busy ``serve``) can swap it back in the middle. The include
    then "fails to load" although the resolver holds its verified bytes. A schema
    that is really broken fails every attempt.
    """
    for attempt in range(1, _COMPILE_ATTEMPTS + 1):
        try:
            return _compile(version, files, path)
        except _SpuriousIncludeFailure as exc:
            if attempt == _COMPILE_ATTEMPTS:
                raise
            log.warning("schema_compile_retried", version=version, path=path, error=str(exc))
    raise AssertionError("unreachable")


class _SpuriousIncludeFailure(SchemaError):
    """libxml2 could not load an include although the resolver holds its verified bytes."""


@dataclass(frozen=True)
class VersionSchemas:
    """The verified files of one version and what they declare."""

    version: str
    files: dict[str, bytes]
    #: Message root element name → message code, e.g. ``Abgabe.Abgabe.0401`` → ``0401``.
    message_types: dict[str, str]


class SchemaLoader:
    """Loads and compiles schemas of one store, caching per version and per thread."""

    def __init__(self, store: SchemaStore | None = None) -> None:
        self.store = store if store is not None else SchemaStore()
        self._versions: dict[str, VersionSchemas] = {}
        self._lock = threading.Lock()
        # libxml2's schema parser is not safe for concurrent first use in a process (its
        # built-in types are set up lazily): compiling in parallel threads fails at random.
        self._compile_lock = threading.Lock()
        self._local = threading.local()
        self._installed: tuple[str, ...] | None = None

    def installed_versions(self) -> tuple[str, ...]:
        """Versions fully installed and verified in the store (checked once per loader)."""
        with self._lock:
            if self._installed is None:
                self._installed = tuple(self.store.installed_versions())
            return self._installed

    def version(self, version: str) -> VersionSchemas:
        """Verified files and message types of ``version`` (loaded once per loader)."""
        with self._lock:
            cached = self._versions.get(version)
            if cached is None:
                files = self.store.load(version)
                cached = VersionSchemas(version, files, _message_types(version, files))
                self._versions[version] = cached
            return cached

    def schema(self, version: str, family: str) -> etree.XMLSchema:
        """The compiled schema that validates ``family``'s messages of ``version``."""
        entry = catalog.get(version)
        path = entry.entry_point(family)
        cache: dict[str, etree.XMLSchema] = self._local.__dict__.setdefault("schemas", {})
        compiled = cache.get(path)
        if compiled is None:
            files = self.version(version).files
            with self._compile_lock:
                compiled = _compile_retrying(version, files, path)
            cache[path] = compiled
        return compiled


def _message_types(version: str, files: dict[str, bytes]) -> dict[str, str]:
    """Top-level message elements declared by a version's ``Nachrichten`` files."""
    found: dict[str, str] = {}
    prefix = f"{version}/xdomea-Nachrichten-"
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    for rel, data in files.items():
        if not rel.startswith(prefix):
            continue
        root = etree.fromstring(data, parser)
        for element in root.iterchildren(_XS + "element"):
            name = element.get("name", "")
            if _MESSAGE_ELEMENT.match(name):
                found[name] = name.rsplit(".", 1)[1]
    return found


_default: SchemaLoader | None = None
_default_lock = threading.Lock()


def default_loader() -> SchemaLoader:
    """The process-wide loader over the default schema root."""
    global _default
    with _default_lock:
        if _default is None:
            _default = SchemaLoader()
        return _default


def reset_default_loader() -> None:
    """Forget the process-wide loader (after the schema root changed, e.g. in tests)."""
    global _default
    with _default_lock:
        _default = None
