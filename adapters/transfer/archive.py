"""The ``archive`` destination: upload into an archive's transfer directory, x-man style.

Archives' receiving systems (Landesarchiv Thüringen's x-man and others) read xdomea
ZIPs from an agency→archive folder, named ``<ProzessID>_Aussonderung.<Name>.<Code>.zip``.
Every message goes as a ZIP: a container as it is, a bare message (0501, 0505)
wrapped into one whose only entry is the message XML under the same stem. The
wrapping is deterministic (fixed entry time), so a redelivery after a crash
uploads the same bytes and the folder's no-replace rule counts it as delivered.

The file name follows the archive: an answer the engine names after the archive's
own file (``Outbound.file_name``, e.g. the short style ``<ProzessID>_0505.zip``)
keeps that name; anything else is named in the archive's configured style.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tempfile
import zipfile
from pathlib import Path

from adapters.transfer.folders import open_folder
from adapters.xdomea import naming
from contracts.config import ArchiveConfig, ArchiveTransferDestination
from contracts.delivery import Outbound
from contracts.transfer import TransferFolder
from contracts.xdomea import MessageType
from gateway.errors import PermanentDeliveryError

#: Entry time of wrapped messages: fixed, so the same message gives the same ZIP.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def answer_name(prozess_id: str, typ: MessageType, like: str | None, style: str) -> str:
    """The container name of an answer, in the naming style of the file ``like`` if given."""
    parsed = naming.parse_name(like) if like else None
    chosen = parsed.style if parsed is not None else naming.NamingStyle(style)
    return naming.container_name(prozess_id, typ, chosen)


def wrap_message(xml: bytes, entry_name: str) -> bytes:
    """A ZIP holding only ``xml`` as ``entry_name``, the same bytes for the same input."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(entry_name, date_time=_ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, xml)
    return buffer.getvalue()


class ArchiveTransfer:
    """Delivers messages into one archive's agency→archive folder."""

    def __init__(
        self,
        name: str,
        config: ArchiveTransferDestination,
        archive: ArchiveConfig,
        folder: TransferFolder | None = None,
    ) -> None:
        self.name = name
        self.archive_name = config.archive
        self.archive = archive
        self.folder = folder or open_folder(archive.folder)

    def target_name(self, item: Outbound) -> str:
        """The file name ``item`` is uploaded under.

        Raises:
            PermanentDeliveryError: the ProzessID would not make a plain file name.
        """
        typ = MessageType(element=item.message_element, code=item.nachrichtentyp)
        parsed = naming.parse_name(item.file_name) if item.file_name else None
        fits = (
            parsed is not None
            and parsed.prozess_id.lower() == item.prozess_id.lower()
            and parsed.code == item.nachrichtentyp
        )
        name = answer_name(
            item.prozess_id, typ, item.file_name if fits else None, self.archive.naming
        )
        if name.startswith(".") or "/" in name or "\\" in name or "\0" in name:
            raise PermanentDeliveryError(
                f"ProzessID {item.prozess_id!r} does not make a safe file name ({name!r})"
            )
        return name

    async def deliver(self, item: Outbound) -> None:
        """Upload ``item`` as a ZIP into the archive's outgoing sub-folder.

        Raises:
            TransientDeliveryError: the folder is unreachable, or still holds a
                different file of that name.
            PermanentDeliveryError: the blob is missing or damaged.
        """
        target = self.target_name(item)
        if item.content_kind == "container":
            await self._upload(item.blob_path, target, item.blob_sha256)
            return
        try:
            xml = await asyncio.to_thread(item.blob_path.read_bytes)
        except FileNotFoundError as exc:
            raise PermanentDeliveryError(
                f"blob {item.blob_sha256} is missing from the blob store; restore it and "
                "replay the message"
            ) from exc
        if hashlib.sha256(xml).hexdigest() != item.blob_sha256:
            raise PermanentDeliveryError(
                f"blob {item.blob_sha256} is corrupted; restore it from backup and replay "
                "the message"
            )
        body = wrap_message(xml, target.removesuffix(".zip") + ".xml")
        with tempfile.TemporaryDirectory(prefix="ikz-archive-") as folder:
            source = Path(folder) / target
            await asyncio.to_thread(source.write_bytes, body)
            await self._upload(source, target, hashlib.sha256(body).hexdigest())

    async def _upload(self, source: Path, target: str, sha256: str) -> None:
        try:
            await self.folder.upload(self.archive.outgoing, target, source, sha256)
        except FileNotFoundError as exc:
            raise PermanentDeliveryError(
                f"{source} is missing; restore the blob and replay the message"
            ) from exc

    async def close(self) -> None:
        """Release the folder's connections."""
        await self.folder.close()
