"""MIME on the wire of the XTA service: bounded reads, part streams, MTOM responses."""

from __future__ import annotations

import asyncio
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import BodyPartReader, MultipartReader, StreamReader, web

from adapters.xta.soap import SOAP12_MEDIA_TYPE, Exception_, XtaFault

#: Bytes read or written per chunk.
CHUNK = 256 * 1024


async def read_limited(source: BodyPartReader | StreamReader, limit: int, what: str) -> bytes:
    """All of ``source``, refused with fault 9023 naming ``what`` beyond ``limit`` bytes."""
    chunks: list[bytes] = []
    total = 0
    while True:
        if isinstance(source, BodyPartReader):
            chunk = await source.read_chunk(CHUNK)
        else:
            chunk = await source.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise XtaFault(
                Exception_.PARAMETER_IS_NOT_VALID,
                "9023",
                f"{what} exceeds this gateway's limit of {limit} bytes; send large payloads "
                "as MTOM attachments, or ask the operator to raise [xta] max_message_bytes",
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    """A MIME part's content as it arrives."""
    while chunk := await part.read_chunk(CHUNK):
        yield chunk


async def once(data: bytes) -> AsyncIterator[bytes]:
    """``data`` as a one-chunk stream."""
    yield data


async def drain(parts: MultipartReader) -> None:
    """Read and drop the parts nobody asked for, so the connection can be reused."""
    while (part := await parts.next()) is not None:
        await part.release()


async def mtom_response(
    request: web.Request,
    envelope: bytes,
    action: str | None,
    attachments: list[tuple[str, Path, str]],
) -> web.StreamResponse:
    """The response as MTOM: the envelope as root part, each file streamed as a part.

    No Content-Transfer-Encoding header on the parts: zeep strips CR/LF from both
    ends of a part declared ``binary``, which would change payloads ending in a newline.
    """
    boundary = "MIMEBoundary_" + uuid.uuid4().hex
    root_id = f"root.{uuid.uuid4().hex}@ikz-gateway"
    soap_type = SOAP12_MEDIA_TYPE + (f'; action=\\"{action}\\"' if action else "")
    answer = web.StreamResponse(
        headers={
            "Content-Type": (
                f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
                f'start="<{root_id}>"; start-info="{soap_type}"'
            ),
            "MIME-Version": "1.0",
        }
    )
    await answer.prepare(request)
    await answer.write(
        (
            f"--{boundary}\r\n"
            f'Content-Type: application/xop+xml; charset=UTF-8; type="{soap_type}"\r\n'
            f"Content-ID: <{root_id}>\r\n\r\n"
        ).encode("ascii")
        + envelope
    )
    for cid, path, media_type in attachments:
        await answer.write(
            (
                f"\r\n--{boundary}\r\nContent-Type: {media_type}\r\nContent-ID: <{cid}>\r\n\r\n"
            ).encode("ascii")
        )
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                await answer.write(chunk)
        finally:
            handle.close()
    await answer.write(f"\r\n--{boundary}--\r\n".encode("ascii"))
    await answer.write_eof()
    return answer


def write_zip(target: Path, entries: list[tuple[Path, str]]) -> None:
    """A ZIP container at ``target`` of the files in ``entries`` under their names."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, name in entries:
            archive.write(path, name)
