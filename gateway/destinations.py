"""Destination adapters for the configured destinations, one per ``[destinations.NAME]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.dms.destination import DmsImport
from adapters.fvdaten.destination import FVDatenDestination
from adapters.peer.http import PeerGateway
from adapters.transfer.filesystem import FilesystemTransfer
from adapters.xta.client import XtaClient
from adapters.xta.destination import XtaMsgBox
from adapters.xta.msgbox import MsgBoxStore
from contracts.config import (
    ArchiveTransferDestination,
    AussonderungDestination,
    DmsDestination,
    FilesystemDestination,
    FvdatenDestination,
    GatewayConfig,
    HttpDestination,
    SoapDestination,
    XtaDestination,
    XtaMsgBoxDestination,
)
from contracts.delivery import Destination, NodeOutbox
from gateway import tls
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.blobs import BlobStore
    from gateway.journal.store import Journal


def build_destinations(
    config: GatewayConfig,
    outbox: NodeOutbox | None = None,
    *,
    journal: Journal | None = None,
    blobs: BlobStore | None = None,
) -> dict[str, Destination]:
    """One adapter per configured destination, keyed by its name.

    ``outbox`` is where destinations that answer while delivering (FVDaten, archive
    exchanges) submit their answers; ``None`` where nothing is served (e.g. tools).
    The ``aussonderung`` engine also reads its process from ``journal`` and ``blobs``.

    Building opens nothing: connections are made on first use and released by
    each adapter's ``close()``. TLS files of peer destinations are read here, so a
    broken one stops the start.

    Raises:
        ConfigError: a peer destination's TLS files are missing or do not fit, or an
            aussonderung destination is built without outbox, journal and blob store.
    """
    built: dict[str, Destination] = {}
    for name, destination in config.destinations.items():
        if isinstance(destination, FilesystemDestination):
            built[name] = FilesystemTransfer(name, destination)
        elif isinstance(destination, HttpDestination):
            context = tls.client_context(name, destination)
            built[name] = PeerGateway(name, destination, ssl_context=context)
        elif isinstance(destination, DmsDestination):
            built[name] = DmsImport(name, destination)
        elif isinstance(destination, FvdatenDestination):
            built[name] = FVDatenDestination(name, destination, outbox)
        elif isinstance(destination, SoapDestination):
            from adapters.soap.destination import SoapCall

            built[name] = SoapCall(name, destination)
        elif isinstance(destination, ArchiveTransferDestination):
            from adapters.transfer.archive import ArchiveTransfer

            archive = config.archives[destination.archive]
            built[name] = ArchiveTransfer(name, destination, archive)
        elif isinstance(destination, AussonderungDestination):
            if outbox is None or journal is None or blobs is None:
                raise ConfigError(
                    f"destination {name} (type aussonderung) runs only inside a gateway "
                    "process (serve), which gives it the journal and the node's outbox"
                )
            from gateway.aussonderung import AussonderungEngine

            built[name] = AussonderungEngine(name, config, journal, blobs, outbox)
        elif isinstance(destination, XtaMsgBoxDestination):
            store = MsgBoxStore.from_url(config.storage.journal)
            built[name] = XtaMsgBox(name, destination, store)
        elif isinstance(destination, XtaDestination):
            built[name] = XtaClient(name, destination, author=config.node.behoerdenkennung)
        else:  # pragma: no cover - the config's discriminated union has no other types
            raise TypeError(f"no adapter for destination type {type(destination).__name__}")
    return built
