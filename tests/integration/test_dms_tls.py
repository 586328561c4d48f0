"""dmsin over TLS: the CA file and the client certificate of the configuration are used.

The simulator serves HTTPS on 127.0.0.1 with a certificate made for the test by
``openssl`` and demands a client certificate signed by the test's own CA.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from adapters.dms.dmsin import DmsinPort
from adapters.dms.sim.app import create_app
from contracts.config import DmsinConfig
from contracts.dms import Objektdaten
from contracts.xdomea import SchriftgutobjektArt
from gateway.errors import TransientDeliveryError
from tests.dms_support import WSDL

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Certificates valid for one day, made fresh for this module."""
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=Test CA",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.pem"),
    )
    for name, extension in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(d / f"{name}.key"),
            "-out",
            str(d / f"{name}.csr"),
        )
        (d / f"{name}.ext").write_text(extension + "\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            str(d / f"{name}.csr"),
            "-CA",
            str(d / "ca.pem"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(d / f"{name}.ext"),
            "-out",
            str(d / f"{name}.pem"),
        )
    return Pki(d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key")


@pytest.fixture
async def https_sim(pki: Pki, tmp_path: Path) -> AsyncIterator[str]:
    """The simulator on https://127.0.0.1, demanding a client certificate from the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    runner = web.AppRunner(create_app(WSDL, tmp_path / "sim", aktenplan=["63"]))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    yield f"https://127.0.0.1:{port}/"
    await runner.cleanup()


AKTE = Objektdaten(art=SchriftgutobjektArt.AKTE, uuid="5f0c2b9e-8d4a-4f61-9e3b-2a7c1d0e4b58")


async def test_mutual_tls_with_the_configured_files(https_sim: str, pki: Pki) -> None:
    """With the CA file and the client certificate the WSDL loads and calls go through."""
    port = DmsinPort(
        DmsinConfig(
            wsdl=https_sim + "?wsdl",
            userlogin="u",
            ca_file=pki.ca,
            client_cert=pki.client_cert,
            client_key=pki.client_key,
        )
    )

    assert await port.find(None, AKTE) is None
    await port.close()


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("ca_file", r"TLS .* failed.*ca_file, client_cert"),
        # TLS 1.3 reports a refused client certificate as a closed connection, 1.2 as a
        # handshake failure; either way the message points at the certificate settings.
        ("client_cert", r"(refused the client certificate|TLS .* failed).*client_cert"),
    ],
)
async def test_tls_failure_is_transient_and_names_the_settings(
    https_sim: str, pki: Pki, missing: str, expected: str
) -> None:
    """An untrusted server or a missing client certificate is retried, pointing at the TLS keys."""
    settings = {"ca_file": pki.ca, "client_cert": pki.client_cert, "client_key": pki.client_key}
    settings.pop(missing)
    if missing == "client_cert":
        settings.pop("client_key")
    port = DmsinPort(DmsinConfig(wsdl=https_sim + "?wsdl", userlogin="u", **settings))  # type: ignore[arg-type]

    with pytest.raises(TransientDeliveryError, match=expected):
        await port.find(None, AKTE)
    await port.close()
