"""Test data for intake and the HTTP API: a gateway (Kommune B) with its partners and messages.

Kommune B (060:4711) routes messages for itself (and for Kommune C) to a filesystem destination
``dms``. Two partners may send: Kommune A (060:0815, every version) and Kommune C
(060:1234, only xdomea 3.1.0). Messages are built with the project's builders.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from adapters.xdomea.builders import build_abgabe_0401
from adapters.xdomea.container import write_container
from contracts.builders import AkteSpec, DokumentSpec, VorgangSpec, primaerdokument_name
from contracts.config import (
    FilesystemDestination,
    GatewayConfig,
    HttpConfig,
    NodeConfig,
    PartnerConfig,
    RouteConfig,
    StorageConfig,
)
from contracts.xdomea import Behoerdenkennung, Kontakt
from gateway.blobs import PRUNE_LOCK
from gateway.config import token_digest
from gateway.demo_data import KOMMUNE_A, KOMMUNE_B, simple_pdf

TOKEN_A = "a-token-only-kommune-a-knows-0815"
TOKEN_C = "c-token-only-kommune-c-knows-1234"

KOMMUNE_C = Kontakt(
    behoerdenkennung=Behoerdenkennung(praefix="060", kennung="1234", kennung_name="Cdorf"),
    institution="Gemeinde Cdorf",
)
NOBODY = Kontakt(
    behoerdenkennung=Behoerdenkennung(praefix="060", kennung="9999", kennung_name="Nirgendwo"),
    institution="Gemeinde Nirgendwo",
)


def gateway_config(tmp_path: Path, *, max_body_bytes: int = 50 * 1024**2) -> GatewayConfig:
    """Kommune B's gateway, with its journal and blobs under ``tmp_path``."""
    return GatewayConfig(
        node=NodeConfig(id="kommune-b", behoerdenkennung="060:4711"),
        storage=StorageConfig(
            journal=f"sqlite:///{tmp_path / 'journal.db'}", blobs=tmp_path / "blobs"
        ),
        http=HttpConfig(max_body_bytes=max_body_bytes),
        partners=(
            PartnerConfig(
                id="kommune-a", behoerdenkennung="060:0815", token_sha256=token_digest(TOKEN_A)
            ),
            PartnerConfig(
                id="kommune-c",
                behoerdenkennung="060:1234",
                xdomea_versions=("3.1.0",),
                token_sha256=token_digest(TOKEN_C),
            ),
        ),
        destinations={
            "dms": FilesystemDestination(type="filesystem", directory=tmp_path / "dms"),
        },
        routes=(
            RouteConfig(empfaenger="060:4711", destination="dms"),
            # B relays to C through the same transfer folder (messages addressed to C).
            RouteConfig(empfaenger="060:1234", destination="dms"),
        ),
    )


def abgabe(
    version: str = "3.1.0",
    *,
    absender: Kontakt = KOMMUNE_A,
    empfaenger: Kontakt = KOMMUNE_B,
    prozess_id: str | None = None,
) -> tuple[bytes, dict[str, bytes]]:
    """An Abgabe 0401 with one Akte, one Vorgang and two PDFs, and the PDFs by file name."""
    documents = {
        primaerdokument_name(f"{stem}.pdf"): simple_pdf(f"Gemeinde Adorf - {stem}")
        for stem in ("Antrag", "Bescheid")
    }
    akte = AkteSpec(
        betreff="Bauantrag Lindenweg 3",
        vorgaenge=(
            VorgangSpec(
                betreff="Antrag",
                dokumente=tuple(DokumentSpec.with_file(name) for name in documents),
            ),
        ),
    )
    xml = build_abgabe_0401(
        version, (akte,), absender=absender, empfaenger=empfaenger, prozess_id=prozess_id
    )
    return xml, documents


def container(tmp_path: Path, version: str = "3.1.0", **options: Any) -> bytes:
    """An Abgabe container's bytes (written by the project's container writer)."""
    xml, documents = abgabe(version, **options)
    path, _ = write_container(tmp_path / uuid.uuid4().hex, xml, documents)
    return path.read_bytes()


def bare_message(version: str = "3.1.0", **options: Any) -> bytes:
    """A bare 0401 message XML without documents (an empty Akte); options go to the builder."""
    options = {"absender": KOMMUNE_A, "empfaenger": KOMMUNE_B, **options}
    return build_abgabe_0401(version, (AkteSpec(betreff="Leere Akte"),), **options)


def schema_invalid_message() -> bytes:
    """A bare message whose Erstellungszeitpunkt is not a date (a schema error)."""
    return re.sub(
        rb"<xdomea:Erstellungszeitpunkt>[^<]+<",
        b"<xdomea:Erstellungszeitpunkt>gestern<",
        bare_message(),
        count=1,
    )


def message_of_unknown_version() -> bytes:
    """A bare message in the namespace of an xdomea version that does not exist."""
    return bare_message().replace(b"xdomea:schema:3.1.0", b"xdomea:schema:9.9.9")


async def chunks_of(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    """``data`` as an async stream of chunks, as intake receives it."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def blob_files(root: Path) -> list[Path]:
    """Every file in a blob store: staged uploads and committed blobs (not its lock files)."""
    locks = {".lock", PRUNE_LOCK}
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in locks)
