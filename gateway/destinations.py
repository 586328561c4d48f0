"""Destination adapters for the configured destinations, one per ``[destinations.NAME]``."""

from __future__ import annotations

from adapters.dms.destination import DmsImport
from adapters.fvdaten.destination import FVDatenDestination
from adapters.peer.http import PeerGateway
from adapters.transfer.filesystem import FilesystemTransfer
from adapters.xta.client import XtaClient
from adapters.xta.destination import XtaMsgBox
from adapters.xta.msgbox import MsgBoxStore
from contracts.config import (
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


def build_destinations(
    config: GatewayConfig, outbox: NodeOutbox | None = None
) -> dict[str, Destination]:
    """One adapter per configured destination, keyed by its name.

    ``outbox`` is where destinations that answer while delivering (FVDaten, archive
    exchanges) submit their answers; ``None`` where nothing is served (e.g. tools).

    Building opens nothing: connections are made on first use and released by
    each adapter's ``close()``. TLS files of peer destinations are read here, so a
    broken one stops the start.

    Raises:
        ConfigError: a peer destination's TLS files are missing or do not fit.
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
        elif isinstance(destination, XtaMsgBoxDestination):
            store = MsgBoxStore.from_url(config.storage.journal)
            built[name] = XtaMsgBox(name, destination, store)
        elif isinstance(destination, XtaDestination):
            built[name] = XtaClient(name, destination, author=config.node.behoerdenkennung)
        else:  # pragma: no cover - the config's discriminated union has no other types
            raise TypeError(f"no adapter for destination type {type(destination).__name__}")
    return built
