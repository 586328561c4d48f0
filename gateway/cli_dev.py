"""``ikz-gateway dev …``: tools for developing and testing against partner systems.

``dev webdav-server`` and ``dev archive-sim`` live in ``gateway.cli_archive_sim``
and are registered at the end of this module. ``dev dms-sim`` runs the dmsin DMS
simulator (``adapters.dms.sim``) on loopback.
It prints one line per fact (``url``, ``wsdl``, each ``aktenplan`` entry's address)
so scripts can read them, then serves until interrupted.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import click
from aiohttp import web

from gateway import cli_archive_sim

#: The simulator never listens beyond this machine.
_HOST = "127.0.0.1"


@click.group("dev")
def dev() -> None:
    """Development tools: simulators of partner systems."""


@dev.command("dms-sim")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8090,
    show_default=True,
    help="TCP port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--wsdl",
    "wsdl",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The dmsin WSDL file (served unchanged at /?wsdl).",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder of the simulator's durable store (created if missing).",
)
@click.option(
    "--aktenplan",
    multiple=True,
    metavar="NAME",
    help="Create this Aktenplaneintrag if missing and print its address (repeatable).",
)
def dms_sim(port: int, wsdl: Path, data: Path, aktenplan: Sequence[str]) -> None:
    """Run the Fabasoft dmsin DMS simulator on 127.0.0.1 until Ctrl-C."""
    from adapters.dms.sim.app import SIMULATOR, aktenplaneintrag, create_app

    try:
        app = create_app(wsdl, data, aktenplan=aktenplan)
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"cannot serve {wsdl}: {exc}") from exc

    async def announce(app: web.Application) -> None:
        store = app[SIMULATOR].store
        for name in aktenplan:
            address = await asyncio.to_thread(aktenplaneintrag, store, name)
            click.echo(f"aktenplan {address} {name}")

    app.on_startup.append(announce)
    asyncio.run(_serve(app, port))


async def _serve(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, _HOST, port)
        try:
            await site.start()
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {_HOST}:{port}: {exc.strerror}") from exc
        bound = runner.addresses[0][1] if runner.addresses else port
        click.echo(f"url http://{_HOST}:{bound}/")
        click.echo(f"wsdl http://{_HOST}:{bound}/?wsdl")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


dev.add_command(cli_archive_sim.webdav_server)
dev.add_command(cli_archive_sim.archive_sim)
