"""The ``dms`` destination: import a routed xdomea message into a Kommune's DMS.

``deliver`` checks the blob against its SHA-256, opens the container, plans the
import (every input problem is found here, before any DMS call) and runs it
against the configured backend. A retry after any failure runs the same import
again, which finds what the earlier attempt filed and continues (see
``adapters.dms.importer``).

Error mapping: a missing or corrupted blob, an invalid container, a message the
DMS cannot hold, and refusals by the DMS are permanent; an unreachable or failing
DMS is transient. The backends translate their own errors.
"""

from __future__ import annotations

import asyncio
import hashlib
from contextlib import ExitStack
from typing import IO

import structlog

from adapters.dms import mapping
from adapters.dms.importer import ImportErgebnis, UuidLocks, run_import
from adapters.dms.plan import Plan, Ziel, plan_import
from adapters.xdomea.container import Container, ContainerReport
from adapters.xdomea.validation import check_message
from contracts.builders import ObjectResult
from contracts.config import DmsBackendConfig, DmsDestination, NodeDmsConfig
from contracts.delivery import DeliveryResult, Outbound
from contracts.dms import DmsPort
from gateway.errors import GatewayError, PermanentDeliveryError

log = structlog.get_logger(__name__)

_CHUNK = 1024 * 1024


def build_port(config: DmsBackendConfig | NodeDmsConfig) -> DmsPort:
    """The configured backend (imported lazily: zeep is only needed for dmsin)."""
    if config.backend == "dmsin":
        from adapters.dms.dmsin import DmsinPort

        assert config.dmsin is not None  # the config validator guarantees it
        return DmsinPort(config.dmsin)
    from adapters.dms.filesystem import FilesystemDms

    assert config.directory is not None  # the config validator guarantees it
    return FilesystemDms(config.directory)


class DmsImport:
    """Delivers xdomea messages by importing them into one DMS."""

    def __init__(self, name: str, config: DmsDestination, port: DmsPort | None = None) -> None:
        self.name = name
        self.port = port or build_port(config)
        self.ziel = Ziel(
            name=name,
            top_level=self.port.top_level,
            needs_aktenplan=self.port.needs_aktenplan,
            aktenplan=mapping.Aktenplan(config.aktenplan, config.aktenplan_default),
            ablage=config.ablage,
        )
        self._locks = UuidLocks()

    async def deliver(self, item: Outbound) -> DeliveryResult:
        """Import ``item`` into the DMS; see ``import_message``.

        Returns:
            The objects the DMS refused (``ObjectRefused``), for the 0402 (the rest
            was imported), and every object filed or found with its DMS address.
        """
        ergebnis = await self.import_message(item)
        return DeliveryResult(
            objects={
                uuid: ObjectResult.failed(*reasons) for uuid, reasons in ergebnis.fehler.items()
            },
            dms_objects=tuple(ergebnis.objekte),
        )

    async def import_message(self, item: Outbound) -> ImportErgebnis:
        """Import ``item`` into the DMS (again: resuming whatever an earlier attempt did).

        Returns:
            The DMS address of every imported object and what was created or found.

        Raises:
            TransientDeliveryError: the DMS is unreachable or failing; retry.
            PermanentDeliveryError: the blob is damaged, the message invalid or not
                importable, or the DMS refused it.
        """
        with ExitStack() as stack:
            plan, source = await asyncio.to_thread(self._open, item, stack)
            return await run_import(self.port, plan, source, self._locks)

    def _open(self, item: Outbound, stack: ExitStack) -> tuple[Plan, _Source]:
        """Check the blob, read and plan the message; in a worker thread."""
        verify_blob(item)
        where = f"message {item.message_id} (ProzessID {item.prozess_id})"
        try:
            if item.content_kind == "container":
                container = stack.enter_context(Container(item.blob_path))
                plan = plan_import(container.report(), self.ziel, where=where)
                return plan, _Source(container)
            checked = check_message(item.blob_path.read_bytes(), where=str(item.blob_path))
        except PermanentDeliveryError:
            raise
        except GatewayError as exc:
            raise PermanentDeliveryError(
                f"message {item.message_id} cannot be imported into {self.name!r}: {exc}"
            ) from exc
        if checked.read().dateinamen():
            raise PermanentDeliveryError(
                f"message {item.message_id} references primary documents but came without "
                "a container; send the ZIP container"
            )
        report = ContainerReport(path=str(item.blob_path), checked=checked, message_entry="")
        return plan_import(report, self.ziel, where=where), _Source(None)

    async def close(self) -> None:
        """Close the backend's connections."""
        await self.port.close()


class _Source:
    """Opens a primary document of the open container by name."""

    def __init__(self, container: Container | None) -> None:
        self.container = container

    def __call__(self, dateiname: str) -> IO[bytes]:
        if self.container is None:  # pragma: no cover - plans without container have no files
            raise PermanentDeliveryError(f"{dateiname} is not available without a container")
        return self.container.open_document(dateiname)


def verify_blob(item: Outbound) -> None:
    """Check that the blob is there and holds the journaled bytes.

    Raises:
        PermanentDeliveryError: it is missing or corrupted (restore and replay).
    """
    digest = hashlib.sha256()
    size = 0
    try:
        with item.blob_path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError as exc:
        raise PermanentDeliveryError(
            f"blob {item.blob_sha256} is missing from the blob store; restore it and replay "
            "the message"
        ) from exc
    if digest.hexdigest() != item.blob_sha256 or size != item.size:
        raise PermanentDeliveryError(
            f"blob {item.blob_sha256} is corrupted (read {size} bytes with SHA-256 "
            f"{digest.hexdigest()}); restore it from backup and replay the message"
        )
