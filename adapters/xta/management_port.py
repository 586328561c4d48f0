"""ManagementPort: MessageIDs, account check, service lookup, transport reports, cancel."""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from adapters.xta import metadata
from adapters.xta.msgbox import MsgBoxStore
from adapters.xta.operation import Answer, Backend, Call, text, unknown_id
from adapters.xta.soap import OSCIMETA, WSA, XTA, Exception_, XtaFault
from contracts.config import GatewayConfig


class ManagementPort:
    """The operations of ManagementPort."""

    def __init__(
        self, gateway: GatewayConfig, identity: str, backend: Backend, msgbox: MsgBoxStore
    ) -> None:
        """The port for ``gateway``'s node; ``identity`` is its XTAServerIdentity."""
        self._gateway = gateway
        self._identity = identity
        self._backend = backend
        self._msgbox = msgbox

    async def create_message_id(self, call: Call) -> Answer:
        """``createMessageId``: a fresh MessageID, recorded for this partner."""
        xta_id = await self._msgbox.create_message_id(
            call.partner.id, prefix=f"urn:de:xta:messageid:{self._gateway.node.id}"
        )
        element = etree.Element(f"{{{WSA}}}MessageID")
        element.text = xta_id
        return [element], []

    async def check_account_active(self, call: Call) -> Answer:
        """``checkAccountActive``: an authenticated partner's account is active."""
        return [], []

    async def lookup_service(self, call: Call) -> Answer:
        """``lookupService``: a Reader is available when this gateway routes to it."""
        assert call.body is not None
        result = etree.Element(f"{{{XTA}}}LookupServiceResponse")
        results = etree.SubElement(result, f"{{{XTA}}}LookupServiceResultList")
        for service in call.body.iter(f"{{{XTA}}}LookupService"):
            reader = service.find(f"{{{OSCIMETA}}}Reader")
            kennung = text(reader.find(f"{{{OSCIMETA}}}Identifier")) if reader is not None else None
            item = etree.SubElement(results, f"{{{XTA}}}LookupServiceResult")
            item.extend(etree.fromstring(etree.tostring(child)) for child in service)
            value = etree.SubElement(item, f"{{{XTA}}}IsServiceAvailableValue")
            available = kennung is not None and self._backend.routable(kennung)
            etree.SubElement(value, f"{{{XTA}}}ServiceIsAvailable").text = str(available).lower()
        return [result], []

    async def get_transport_report(self, call: Call) -> Answer:
        """``getTransportReport``: the state of a message this partner sent."""
        assert call.body is not None
        xta_id = text(call.body) or ""
        transport = await self._msgbox.transport(xta_id, call.partner.id)
        if transport is None:
            raise unknown_id(f"MessageID {xta_id} is not known for partner {call.partner.id}")
        state = (
            await self._backend.message_state(transport.message_id)
            if transport.message_id
            else None
        )
        status = {"delivered": "1", "dead": "3"}.get(state or "", "0")
        report = etree.Element(f"{{{XTA}}}TransportReport")
        if transport.metadata_xml:
            report.append(etree.fromstring(transport.metadata_xml, _parser()))
        else:
            report.append(
                metadata.build(
                    metadata.MetaData(
                        message_id=xta_id,
                        author=call.partner.behoerdenkennung,
                        reader=self._gateway.node.behoerdenkennung,
                        nachrichtentyp="0000",
                    )
                )
            )
        etree.SubElement(report, f"{{{XTA}}}ReportTime").text = _now().isoformat()
        etree.SubElement(report, f"{{{XTA}}}XTAServerIdentity").text = self._identity
        message_status = etree.SubElement(report, f"{{{XTA}}}MessageStatus")
        etree.SubElement(message_status, f"{{{XTA}}}Status").text = status
        return [report], []

    async def cancel_message(self, call: Call) -> Answer:
        """``cancelMessage``: never possible here (messages without NotBefore leave at once)."""
        raise XtaFault(
            Exception_.CANCEL_DENIED,
            "9101",
            "this gateway delivers every message at once (it does not honour NotBefore), so a "
            "message cannot be cancelled once sent",
        )


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _now() -> datetime:
    return datetime.now(UTC)
