"""Test set-up for XTA 2: Kommune B's gateway serving ``[xta]``, and zeep clients of XTA.wsdl.

Kommune A's Fachverfahren (partner ``kommune-a``, 060:0815) connects to B's gateway
over XTA 2 with a UsernameToken (its partner token as password). B files messages
for itself into a transfer folder ``dms`` and puts messages for A (e.g. the
receipts it owes A) into A's message box ``box-a``. The clients are built from the
unchanged XTA.wsdl in ../shared; calls run in threads (zeep is synchronous, the
gateway runs on the test's event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import zeep
from aiohttp.test_utils import TestServer
from lxml import etree
from zeep.wsse.username import UsernameToken

from adapters.xta import metadata
from adapters.xta.mtom import MtomTransport
from contracts.config import (
    FilesystemDestination,
    GatewayConfig,
    HttpConfig,
    NodeConfig,
    PartnerConfig,
    RouteConfig,
    StorageConfig,
    WorkerConfig,
    XtaMsgBoxDestination,
    XtaServerConfig,
)
from gateway.app import build_app
from gateway.config import token_digest
from tests.conftest import SHARED
from tests.intake_support import TOKEN_A

WSDL = SHARED / "wsdl" / "xta2" / "XTA.wsdl"
NS = "{http://xoev.de/transport/xta/211}"
T = TypeVar("T")


def xta_config(
    tmp_path: Path,
    *,
    journal: str | None = None,
    max_message_bytes: int = 40 * 1000 * 1000,
    partners: tuple[PartnerConfig, ...] | None = None,
    http: HttpConfig | None = None,
    mtom_responses: bool = True,
) -> GatewayConfig:
    """Kommune B's gateway with ``[xta]``, journal and blobs under ``tmp_path``."""
    (tmp_path / "dms").mkdir(parents=True, exist_ok=True)
    return GatewayConfig(
        node=NodeConfig(id="kommune-b", behoerdenkennung="060:4711"),
        storage=StorageConfig(
            journal=journal or f"sqlite:///{tmp_path / 'journal.db'}", blobs=tmp_path / "blobs"
        ),
        http=http or HttpConfig(),
        worker=WorkerConfig(poll_interval_seconds=0.05),
        partners=partners
        or (
            PartnerConfig(
                id="kommune-a", behoerdenkennung="060:0815", token_sha256=token_digest(TOKEN_A)
            ),
        ),
        destinations={
            "dms": FilesystemDestination(type="filesystem", directory=tmp_path / "dms"),
            "box-a": XtaMsgBoxDestination(type="xta-msgbox", partner="kommune-a"),
        },
        routes=(
            RouteConfig(empfaenger="060:4711", destination="dms"),
            RouteConfig(empfaenger="060:0815", destination="box-a"),
        ),
        xta=XtaServerConfig(
            wsdl=WSDL, max_message_bytes=max_message_bytes, mtom_responses=mtom_responses
        ),
    )


@dataclass
class Gateway:
    """A running gateway: its configuration, the XTA service URL and the clients made for it."""

    config: GatewayConfig
    url: str
    clients: list[Client] = field(default_factory=list)

    def client(self, **options: Any) -> Client:
        """A zeep client of this gateway (``client``'s options); closed with the gateway."""
        made = client(self.url, **options)
        self.clients.append(made)
        return made


@asynccontextmanager
async def running_gateway(config: GatewayConfig, **server: Any) -> AsyncIterator[Gateway]:
    """``build_app(config)`` served on 127.0.0.1 (a free port) for the block."""
    app = await build_app(config)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server(**server)
    scheme = "https" if server.get("ssl") else "http"
    url = str(test_server.make_url("/xta")).replace("http://", f"{scheme}://", 1)
    gateway = Gateway(config, url)
    try:
        yield gateway
    finally:
        for made in gateway.clients:
            made.transport.session.close()
        await test_server.close()


@dataclass
class Client:
    """The three ports of one zeep client, and its transport."""

    transport: MtomTransport | zeep.Transport
    send: Any
    box: Any
    management: Any

    def attach(self, path: Path, content_type: str = "application/zip") -> Any:
        """An MTOM payload (only with the gateway's MTOM transport)."""
        assert isinstance(self.transport, MtomTransport)
        return self.transport.attach(path, content_type=content_type)


def client(
    url: str,
    *,
    mtom: bool = True,
    username: str | None = "kommune-a",
    password: str = TOKEN_A,
    session: Any = None,
) -> Client:
    """A zeep client of the unchanged XTA.wsdl addressed to ``url``."""
    transport: Any = MtomTransport(session=session) if mtom else zeep.Transport(session=session)
    wsse = UsernameToken(username, password) if username is not None else None
    # zeep adds the WS-Addressing headers itself: the WSDL names wsam:Action per operation.
    built = zeep.Client(str(WSDL), transport=transport, wsse=wsse)
    services = {
        name: built.create_service(f"{NS}{binding}", url)
        for name, binding in (
            ("send", "sendXTAHttpsBinding"),
            ("box", "msgBoxHttpsBinding"),
            ("management", "managementHttpsBinding"),
        )
    }
    return Client(transport, **services)


def meta(xta_id: str, nachrichtentyp: str = "0401") -> etree._Element:
    """The MessageMetaData header Kommune A's Fachverfahren sends to B."""
    return metadata.build(
        metadata.MetaData(
            message_id=xta_id, author="060:0815", reader="060:4711", nachrichtentyp=nachrichtentyp
        )
    )


async def new_message_id(xta: Client) -> str:
    """A MessageID from the service's createMessageId."""
    created = await call(xta.management.createMessageId)
    return str(created._value_1)


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a (blocking) zeep call in a thread."""
    return await asyncio.to_thread(function, *args, **kwargs)
