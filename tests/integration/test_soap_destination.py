"""The generic ``soap`` destination against a real SOAP server: the dmsin simulator on loopback.

The simulator serves the unchanged Fabasoft dmsin WSDL (from ../shared); the
destination maps a 0401's Akte Betreff onto ``CreateFileGI`` declaratively, as an
operator would for a Fachverfahren with its own SOAP API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from adapters.dms import dmsin_names as names
from adapters.soap.destination import SoapCall
from contracts.config import SoapDestination, SoapFaultRules, SoapResponseConfig
from contracts.delivery import Outbound
from gateway.blobs import BlobStore
from gateway.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from tests import delivery_support
from tests.acceptance.processes import free_port
from tests.dms_support import WSDL, Sim, running_sim

BETREFF = "string(//xdomea:Schriftgutobjekt/xdomea:Akte/xdomea:AllgemeineMetadaten/xdomea:Betreff)"


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Sim]:
    """The simulator with one Aktenplaneintrag."""
    async with running_sim(tmp_path / "sim") as running:
        yield running


def soap_config(sim: Sim, **overrides: Any) -> SoapDestination:
    """CreateFileGI with the Akte's Betreff as title, filed under the Aktenplaneintrag."""
    values: dict[str, Any] = {
        "type": "soap",
        "wsdl": sim.url + "?wsdl",
        "operation": "CreateFileGI",
        "parameters": {
            "userlogin": "'svc-ikz-gateway'",
            "apentry": f"'{sim.aktenplaneintrag}'",
            "shortname": BETREFF,
            "filesubj": BETREFF,
        },
        "response": SoapResponseConfig(
            fields={"objid": "objid"}, success_field="status", error_field="errormessage"
        ),
        "read_timeout_seconds": 5.0,
        "connect_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return SoapDestination(**values)


async def abgabe_item(tmp_path: Path) -> tuple[Outbound, str]:
    """A 0401 container stored as a blob; the item and its Akte's Betreff."""
    abgabe = delivery_support.abgabe()
    item = await delivery_support.outbound(
        BlobStore(tmp_path / "blobs"), abgabe.container, prozess_id=abgabe.prozess_id
    )
    betreff = abgabe.xml.split(b"<xdomea:Betreff>", 1)[1].split(b"<", 1)[0].decode()
    return item, betreff


async def test_mapped_call_creates_the_akte_and_logs_the_answer_fields(
    sim: Sim, tmp_path: Path
) -> None:
    """The Betreff reaches the partner as shortname; the answer's objid is logged."""
    item, betreff = await abgabe_item(tmp_path)
    destination = SoapCall("partner", soap_config(sim))

    with capture_logs() as logs:
        await destination.deliver(item)
    await destination.close()

    akten = [o for o in await sim.objects() if o["objclass"] == names.AKTE]
    (done,) = [e for e in logs if e["event"] == "soap_call_done"]
    assert [a["fields"]["shortname"] for a in akten] == [betreff]
    assert done["fields"] == {"objid": akten[0]["address"]}


async def test_a_wsdl_file_is_loaded_at_start_and_called_at_the_endpoint(
    sim: Sim, tmp_path: Path
) -> None:
    """With the WSDL from a file and the simulator as endpoint, the call goes through."""
    item, _ = await abgabe_item(tmp_path)
    destination = SoapCall("partner", soap_config(sim, wsdl=str(WSDL), endpoint=sim.url))

    await destination.deliver(item)
    await destination.close()

    assert len([o for o in await sim.objects() if o["objclass"] == names.AKTE]) == 1


def test_an_operation_the_wsdl_lacks_stops_the_start(tmp_path: Path) -> None:
    """A WSDL file without the operation is a configuration error naming it."""
    config = SoapDestination(
        type="soap", wsdl=str(WSDL), operation="NoSuchOperation", endpoint="http://127.0.0.1:9/"
    )

    with pytest.raises(ConfigError, match="no operation 'NoSuchOperation'"):
        SoapCall("partner", config)


async def test_a_receiver_fault_is_transient(sim: Sim, tmp_path: Path) -> None:
    """A SOAP Receiver/Server fault from the partner is retried."""
    item, _ = await abgabe_item(tmp_path)
    destination = SoapCall("partner", soap_config(sim))
    await sim.fault(operation="CreateFileGI", kind="fault")

    with pytest.raises(TransientDeliveryError, match="SOAP fault"):
        await destination.deliver(item)
    await destination.close()


async def test_fault_rules_can_make_a_server_fault_permanent(sim: Sim, tmp_path: Path) -> None:
    """With the fault code configured as permanent, the same fault dead-letters."""
    item, _ = await abgabe_item(tmp_path)
    rules = SoapFaultRules(permanent_codes=("Client", "Sender", "Server", "Receiver"))
    destination = SoapCall("partner", soap_config(sim, faults=rules))
    await sim.fault(operation="CreateFileGI", kind="fault")

    with pytest.raises(PermanentDeliveryError, match="SOAP fault"):
        await destination.deliver(item)
    await destination.close()


async def test_an_answer_whose_success_field_says_no_is_permanent(sim: Sim, tmp_path: Path) -> None:
    """A business status other than 0 fails permanently with the partner's error text."""
    item, _ = await abgabe_item(tmp_path)
    destination = SoapCall("partner", soap_config(sim))
    await sim.fault(operation="CreateFileGI", kind="business", status=12, message="gesperrt")

    with pytest.raises(PermanentDeliveryError, match=r"status is '12'.*gesperrt"):
        await destination.deliver(item)
    await destination.close()


async def test_an_unreachable_partner_is_transient(tmp_path: Path) -> None:
    """Nobody listening at the endpoint: the delivery is retried."""
    item, _ = await abgabe_item(tmp_path)
    config = SoapDestination(
        type="soap",
        wsdl=str(WSDL),
        operation="CreateFileGI",
        endpoint=f"http://127.0.0.1:{free_port()}/",
        parameters={"userlogin": "'svc'", "apentry": "'COO.1'"},
        connect_timeout_seconds=1.0,
    )
    destination = SoapCall("partner", config)

    with pytest.raises(TransientDeliveryError, match="unreachable"):
        await destination.deliver(item)
    await destination.close()


async def test_a_required_parameter_the_mapping_leaves_out_is_permanent(
    sim: Sim, tmp_path: Path
) -> None:
    """A mapping that yields no value for a required parameter dead-letters, naming it."""
    item, _ = await abgabe_item(tmp_path)
    config = soap_config(sim)
    parameters = {**config.parameters, "apentry": "//xdomea:Nothing"}
    destination = SoapCall("partner", config.model_copy(update={"parameters": parameters}))

    with pytest.raises(PermanentDeliveryError, match="Missing element apentry"):
        await destination.deliver(item)
    await destination.close()
    assert [o for o in await sim.objects() if o["objclass"] == names.AKTE] == []


def test_the_configured_ca_file_wins_over_requests_ca_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host's REQUESTS_CA_BUNDLE does not silently replace the destination's ca_file."""
    ca_file = tmp_path / "partner-ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "host-bundle.pem"))
    destination = SoapCall(
        "partner",
        SoapDestination(
            type="soap",
            wsdl=str(WSDL),
            operation="CreateFileGI",
            endpoint="https://127.0.0.1:9/",
            ca_file=ca_file,
        ),
    )

    session = destination._proxy()._client.transport.session
    settings = session.merge_environment_settings("https://127.0.0.1:9/", {}, None, None, None)

    assert settings["verify"] == str(ca_file)
