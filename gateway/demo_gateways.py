"""Two real gateways on loopback for the demo: Kommune A and Kommune B.

Each gets its own ``gateway.toml`` (written into the work directory so a user can
read and reuse it), journal (by default a SQLite file in its folder; any journal
URL the caller gives, see ``demo_journals``), blob store and HTTP port. A routes messages for
B to B's ``/v1/messages`` and messages for itself into ``kommune-a/inbox``; B
routes messages for itself into its DMS transfer folder (or, for ``demo --dms
sim``, into a ``dms`` destination the caller gives) and messages for A back to
A. Tokens are random per run and reach the gateways through environment
variables, as in production.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from contracts.config import GatewayConfig
from contracts.journal import Accepted, MessageView
from contracts.processes import ProcessStatus
from gateway import processes
from gateway.app import JOURNAL, build_app, send_file
from gateway.blobs import BlobStore
from gateway.config import load_config, token_digest

#: The start of every demo gateway's ``gateway.toml`` (``str.format`` fields:
#: path, node_id, kennung, journal, port); each demo adds its own tables.
CONFIG_HEAD = """\
# Written by 'ikz-gateway demo'. Start this gateway alone with:
#   ikz-gateway serve --config {path}
[node]
id = "{node_id}"
behoerdenkennung = "{kennung}"

[storage]
journal = {journal}
blobs = "data/blobs"

[http]
host = "127.0.0.1"
port = {port}
"""

_CONFIG = (
    CONFIG_HEAD
    + """
[worker]
poll_interval_seconds = 0.2

[[partners]]
id = "{peer_id}"
behoerdenkennung = "{peer_kennung}"
token_sha256 = "{inbound_digest}"

[destinations.{peer_id}]
type = "http"
url = "http://127.0.0.1:{peer_port}/v1/messages"
token_env = "{outbound_env}"
initial_backoff_seconds = 0.2
max_backoff_seconds = 2

[destinations.local]
type = "filesystem"
directory = "{local_folder}"
{extra_destinations}
[[routes]]
empfaenger = "{peer_kennung}"
destination = "{peer_id}"

[[routes]]
empfaenger = "{kennung}"
destination = "{own_destination}"
"""
)


@dataclass
class Node:
    """One running demo gateway."""

    name: str
    folder: Path
    config: GatewayConfig
    local_folder: Path
    app: web.Application

    async def send(self, path: Path) -> Accepted:
        """Submit a file as this Kommune's own operator would (``ikz-gateway send``)."""
        return await send_file(self.config, path)

    async def message(self, message_id: str) -> MessageView:
        """This gateway's journal view of one message."""
        return await self.app[JOURNAL].get_message(message_id)

    async def process(self, prozess_id: str) -> list[MessageView]:
        """This gateway's journal view of one process."""
        return await self.app[JOURNAL].process(prozess_id)

    async def process_status(self, prozess_id: str) -> ProcessStatus:
        """The process as this gateway derives it (``ikz-gateway process show``)."""
        views = await self.process(prozess_id)
        blobs = BlobStore(self.config.storage.blobs, inline=self.app[JOURNAL].inline_content)
        try:
            return await processes.status(self.config, self.app[JOURNAL], blobs, prozess_id, views)
        finally:
            blobs.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: Each gateway's own SQLite file; relative paths resolve against its gateway.toml.
DEFAULT_JOURNAL = "sqlite:///data/journal.db"


@asynccontextmanager
async def two_gateways(
    workdir: Path,
    kennung_a: str,
    kennung_b: str,
    *,
    journals: Mapping[str, str | None] | None = None,
    dms_b: tuple[str, str] | None = None,
) -> AsyncIterator[tuple[Node, Node]]:
    """Write both configurations, start both gateways, stop them at the end.

    Args:
        workdir: where each gateway gets its folder (``kommune-a``, ``kommune-b``).
        kennung_a: A's Behördenkennung (``Präfix:Kennung``).
        kennung_b: B's Behördenkennung.
        journals: journal URL per gateway (``"a"``, ``"b"``); missing or ``None``: a
            SQLite file in the gateway's folder.
        dms_b: B's DMS destination as ``(name, TOML tables)``; B's messages for itself
            then go there instead of its DMS transfer folder.
    """
    journals = journals or {}
    ports = {"a": _free_port(), "b": _free_port()}
    tokens = {"a": secrets.token_urlsafe(24), "b": secrets.token_urlsafe(24)}
    env = {"a": "IKZ_DEMO_TOKEN_A_TO_B", "b": "IKZ_DEMO_TOKEN_B_TO_A"}
    # Each side's outbound token is what the other side knows by its digest.
    os.environ[env["a"]] = tokens["a"]
    os.environ[env["b"]] = tokens["b"]
    specs = {
        "a": ("kommune-a", kennung_a, "kommune-b", kennung_b, "b", "inbox"),
        "b": ("kommune-b", kennung_b, "kommune-a", kennung_a, "a", "dms-transfer"),
    }
    nodes: dict[str, Node] = {}
    runners: list[web.AppRunner] = []
    try:
        for key, (node_id, kennung, peer_id, peer_kennung, peer, local) in specs.items():
            folder = workdir / node_id
            (folder / local).mkdir(parents=True, exist_ok=True)
            path = folder / "gateway.toml"
            path.write_text(
                _CONFIG.format(
                    path=path,
                    # A JSON string is a valid TOML basic string: quotes and escapes done.
                    journal=json.dumps(journals.get(key) or DEFAULT_JOURNAL),
                    node_id=node_id,
                    kennung=kennung,
                    port=ports[key],
                    peer_id=peer_id,
                    peer_kennung=peer_kennung,
                    inbound_digest=token_digest(tokens[peer]),
                    peer_port=ports[peer],
                    outbound_env=env[key],
                    local_folder=local,
                    extra_destinations=dms_b[1] if key == "b" and dms_b else "",
                    own_destination=dms_b[0] if key == "b" and dms_b else "local",
                ),
                encoding="utf-8",
            )
            config = load_config(path)
            app = await build_app(config)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", ports[key]).start()
            nodes[key] = Node(node_id, folder, config, folder / local, app)
        yield nodes["a"], nodes["b"]
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


async def wait_for_files(folder: Path, count: int, *, timeout: float = 60) -> list[Path]:
    """Wait until ``folder`` holds ``count`` published files (no hidden temp files)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.1)
