"""``[xta]`` and the XTA destinations in gateway.toml: what the configuration refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.config import GatewayConfig, XtaDestination, XtaServerConfig


def _config(**extra: Any) -> dict[str, Any]:
    return {
        "node": {"id": "kommune-b", "behoerdenkennung": "060:4711"},
        "partners": [{"id": "kommune-a", "behoerdenkennung": "060:0815", "token_env": "T"}],
        **extra,
    }


def test_message_box_of_an_unknown_partner_is_refused() -> None:
    """An xta-msgbox destination must name a configured partner."""
    with pytest.raises(ValidationError, match="message box of partner 'kommune-x'"):
        GatewayConfig.model_validate(
            _config(destinations={"box": {"type": "xta-msgbox", "partner": "kommune-x"}})
        )


def test_message_box_of_a_configured_partner_is_accepted() -> None:
    """An xta-msgbox destination for a configured partner loads."""
    config = GatewayConfig.model_validate(
        _config(destinations={"box": {"type": "xta-msgbox", "partner": "kommune-a"}})
    )
    assert config.destinations["box"].type == "xta-msgbox"


@pytest.mark.parametrize("path", ["xta", "/v1/xta", "/v1"])
def test_xta_path_must_be_absolute_and_outside_the_api(path: str) -> None:
    """The XTA path is absolute and never under /v1, where the REST API lives."""
    with pytest.raises(ValidationError, match="not a usable path"):
        XtaServerConfig(wsdl=Path("XTA.wsdl"), path=path)


def test_xta_destination_needs_username_and_password_together() -> None:
    """A UsernameToken needs both its user name and its password variable."""
    with pytest.raises(ValidationError, match="username and password_env go together"):
        XtaDestination(
            type="xta",
            wsdl="XTA.wsdl",
            endpoint="https://x.example/xta",
            reader="060:1",
            username="a",
        )


def test_xta_destination_endpoint_must_be_http() -> None:
    """The upstream endpoint is an http(s) URL."""
    with pytest.raises(ValidationError, match="not an http"):
        XtaDestination(type="xta", wsdl="XTA.wsdl", endpoint="ftp://x.example", reader="060:1")


def test_relative_wsdl_and_tls_files_resolve_against_the_config_folder() -> None:
    """resolved() makes the WSDL and the TLS files absolute, URLs stay as they are."""
    destination = XtaDestination(
        type="xta",
        wsdl="xta2/XTA.wsdl",
        endpoint="https://x.example/xta",
        reader="060:1",
        ca_file=Path("ca.pem"),
    ).resolved(Path("/etc/ikz"))
    assert destination.wsdl == "/etc/ikz/xta2/XTA.wsdl"
    assert destination.ca_file == Path("/etc/ikz/ca.pem")
