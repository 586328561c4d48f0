"""The XTA 2 service: zeep clients of the unchanged XTA.wsdl send to and fetch from the gateway."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep.exceptions
import zeep.helpers

from adapters.xdomea.validation import check_message
from tests.delivery_support import eventually
from tests.intake_support import container
from tests.xta_support import (
    Client,
    call,
    meta,
    new_message_id,
    running_gateway,
    xta_config,
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _filed(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "dms"
    return sorted(folder.glob("*.zip")) if folder.is_dir() else []


async def test_mtom_send_lands_in_the_transfer_folder_bit_identical(tmp_path: Path) -> None:
    """A container sent as an MTOM attachment by zeep with the MTOM transport is filed unchanged."""
    data = container(tmp_path)
    upload = tmp_path / "upload.zip"
    upload.write_bytes(data)
    async with running_gateway(xta_config(tmp_path)) as gateway:
        xta = gateway.client()
        xta_id = await new_message_id(xta)
        payload = xta.attach(upload)
        await call(
            xta.send.sendMessage,
            ContentContainer={"Message": {"_value_1": payload, "contentType": "application/zip"}},
            _soapheaders=[meta(xta_id)],
        )

        async def filed() -> bool:
            return bool(_filed(tmp_path))

        await eventually(filed, what="the container is in the transfer folder")
    assert [_sha(p.read_bytes()) for p in _filed(tmp_path)] == [_sha(data)]


async def _send_inline(xta: Client, data: bytes, xta_id: str) -> None:
    await call(
        xta.send.sendMessage,
        ContentContainer={"Message": {"_value_1": data, "contentType": "application/zip"}},
        _soapheaders=[meta(xta_id)],
    )


async def test_inline_base64_send_lands_in_the_transfer_folder_bit_identical(
    tmp_path: Path,
) -> None:
    """A plain zeep client (base64 inline, no MTOM) is served the same way."""
    data = container(tmp_path)
    async with running_gateway(xta_config(tmp_path)) as gateway:
        xta = gateway.client(mtom=False)
        await _send_inline(xta, data, await new_message_id(xta))

        async def filed() -> bool:
            return bool(_filed(tmp_path))

        await eventually(filed, what="the container is in the transfer folder")
    assert [_sha(p.read_bytes()) for p in _filed(tmp_path)] == [_sha(data)]


async def _status_list(xta: Client) -> list[str]:
    listing = await call(xta.box.getStatusList, maxListItems=10)
    return [str(item.MessageID._value_1) for item in listing.body.MsgAttributes]


async def test_receipts_wait_in_the_senders_message_box_until_closed(tmp_path: Path) -> None:
    """B's 0403 and 0402 for A's Abgabe wait in A's box; getMessage fetches, close removes them."""
    async with running_gateway(xta_config(tmp_path)) as gateway:
        xta = gateway.client()
        await _send_inline(xta, container(tmp_path), await new_message_id(xta))

        async def both_waiting() -> bool:
            return len(await _status_list(xta)) == 2

        await eventually(both_waiting, what="0403 and 0402 wait in A's box")
        waiting = await _status_list(xta)
        fetched = await call(xta.box.getMessage, MsgSelector={"MessageID": [waiting[0]]})
        codes = set()
        for xta_id in waiting:
            answer = await call(xta.box.getMessage, MsgSelector={"MessageID": [xta_id]})
            codes.add(_nachrichtentyp(answer.body.ContentContainer.Message._value_1))
        await call(
            xta.box.close,
            MsgBoxRequestID="urn:ikz-gateway:msgbox:kommune-a:0",
            LastMsgReceived=[{"_value_1": i} for i in waiting],
        )
        remaining = await _status_list(xta)
    assert fetched is not None
    assert codes == {"0403", "0402"}
    assert remaining == []


def _nachrichtentyp(xml: bytes) -> str:
    return check_message(xml).detected.typ.code


async def _receipts_waiting(xta: Client, tmp_path: Path) -> None:
    await _send_inline(xta, container(tmp_path), await new_message_id(xta))

    async def both_waiting() -> bool:
        return len(await _status_list(xta)) == 2

    await eventually(both_waiting, what="0403 and 0402 wait in A's box")


async def test_get_next_message_iterates_the_box_and_ends_with_a_fault(tmp_path: Path) -> None:
    """getMessage gives the oldest, getNextMessage the next; after the last: InvalidMessageID."""
    async with running_gateway(xta_config(tmp_path)) as gateway:
        xta = gateway.client()
        await _receipts_waiting(xta, tmp_path)
        first = await call(xta.box.getMessage)
        second = await _next(xta, first)
        with pytest.raises(zeep.exceptions.Fault) as raised:
            await _next(xta, second)
    fetched = [
        str(answer.header.MessageMetaData.MsgIdentification.MessageID._value_1)
        for answer in (first, second)
    ]
    assert len(set(fetched)) == 2
    assert first.header.FetchResponseHeader.ItemsPending == 1
    assert raised.value.detail[0].tag.endswith("InvalidMessageIDException")


async def test_fetched_messages_keep_their_bytes(tmp_path: Path) -> None:
    """A message fetched from the box has the SHA-256 the journal recorded for it."""
    async with running_gateway(xta_config(tmp_path)) as gateway:
        xta = gateway.client()
        await _receipts_waiting(xta, tmp_path)
        answer = await call(xta.box.getMessage)
        data = bytes(answer.body.ContentContainer.Message._value_1)
        size = answer.body.ContentContainer.Message.size
    assert size == len(data)
    assert check_message(data).detected.typ.code in ("0402", "0403")


async def test_lookup_service_knows_the_readers_it_routes_to(tmp_path: Path) -> None:
    """A Reader the gateway routes to is available; any other is not."""
    async with running_gateway(xta_config(tmp_path)) as gateway:
        xta = gateway.client()
        answer = await call(
            xta.management.lookupService,
            LookupServiceRequestList=[
                {
                    "LookupService": {
                        "Reader": {"Identifier": {"_value_1": kennung, "type": "xoev"}},
                        "ServiceType": "urn:xoev-de:xdomea:service",
                    }
                }
                for kennung in ("060:4711", "060:9999")
            ],
        )
    # zeep unwraps the response's single child, the result list.
    results = answer
    # zeep's choice parser drops a ServiceIsAvailable of false (a falsy value looks
    # unmatched to it), so the unknown Reader shows as no value rather than False.
    available = [r.IsServiceAvailableValue.__values__.get("ServiceIsAvailable") for r in results]
    assert available[0] is True
    assert available[1] is not True


async def test_request_the_xta_schema_refuses_is_a_parameter_fault(tmp_path: Path) -> None:
    """maxListItems="0" violates the OSCI schema: ParameterIsNotValidException 9022 names it."""
    async with running_gateway(xta_config(tmp_path)) as gateway:
        xta = gateway.client()
        with pytest.raises(zeep.exceptions.Fault) as raised:
            await call(xta.box.getStatusList, maxListItems=0)
    assert raised.value.detail[0].tag.endswith("ParameterIsNotValidException")
    assert "maxListItems" in raised.value.message
    assert "does not conform to the XTA 2 schema" in raised.value.message


async def _next(xta: Client, previous: Any) -> Any:
    """getNextMessage after ``previous`` (a getMessage or getNextMessage answer)."""
    return await call(
        xta.box.getNextMessage,
        MsgBoxRequestID=previous.header.FetchResponseHeader.MsgBoxRequestID,
        LastMsgReceived=[previous.header.MessageMetaData.MsgIdentification.MessageID],
    )


@pytest.mark.parametrize(
    ("mtom", "media_type"), [(True, "multipart/related"), (False, "application/soap+xml")]
)
async def test_fetched_message_travels_as_configured(
    tmp_path: Path, mtom: bool, media_type: str
) -> None:
    """getMessage answers with the payload as an MTOM part, or inline with mtom_responses off."""
    seen: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(
        lambda answer, *_, **__: seen.append(answer.headers["Content-Type"])
    )
    async with running_gateway(xta_config(tmp_path, mtom_responses=mtom)) as gateway:
        xta = gateway.client(session=session)
        await _receipts_waiting(xta, tmp_path)
        answer = await call(xta.box.getMessage)
    data = bytes(answer.body.ContentContainer.Message._value_1)
    assert seen[-1].startswith(media_type)
    assert check_message(data).findings == ()
    assert len(data) == answer.body.ContentContainer.Message.size


async def test_send_fetch_and_close_on_each_journal_backend(
    tmp_path: Path, journal_url: str
) -> None:
    """The service, its message boxes and transport reports run on SQLite and PostgreSQL alike."""
    async with running_gateway(xta_config(tmp_path, journal=journal_url)) as gateway:
        xta = gateway.client()
        xta_id = await new_message_id(xta)
        await _send_inline(xta, container(tmp_path), xta_id)

        async def both_waiting() -> bool:
            return len(await _status_list(xta)) == 2

        await eventually(both_waiting, what="0403 and 0402 wait in A's box")
        waiting = await _status_list(xta)
        await call(
            xta.box.close,
            MsgBoxRequestID="urn:ikz-gateway:msgbox:kommune-a:0",
            LastMsgReceived=[{"_value_1": i} for i in waiting],
        )
        report = await call(xta.management.getTransportReport, xta_id)
        remaining = await _status_list(xta)
    assert remaining == []
    assert int(report.MessageStatus.Status) == 1
