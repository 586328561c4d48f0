"""``ikz-gateway abgabe …``: give an Akte from this node's DMS to a partner Kommune.

``abgabe start --akte ADDRESS --to PARTNER`` exports the Akte from ``[dms]`` as an
xdomea 0401, hands it to this gateway as the node itself and prints the message
id, ProzessID and where to follow it (``gateway.abgabe`` has the flow). A running
``serve`` process delivers it and closes the Abgabe once the partner's 0402 is back.

Exit codes: 0 started (or the open Abgabe of that Akte to that partner shown);
1 the exported 0401 was refused; 2 unknown partner, no ``[dms]``, no route, or an
invalid configuration; 3 no Akte or Vorgang at that address; 4 the DMS cannot be
reached. Nothing is journaled unless the exit code is 0.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click


@click.group("abgabe")
def abgabe() -> None:
    """Abgaben of Akten from this node's DMS to partner Kommunen."""


@abgabe.command("start")
@click.option("--akte", required=True, metavar="DMS-ADDRESS", help="The Akte's DMS address.")
@click.option("--to", "to", required=True, metavar="PARTNER", help="Partner id or Behördenkennung.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("gateway.toml"),
    show_default=True,
    help="The gateway's configuration file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def start(akte: str, to: str, config_path: Path, as_json: bool) -> None:
    """Export the Akte at DMS-ADDRESS and send it to PARTNER as an xdomea 0401."""
    from gateway.abgabe import response
    from gateway.app import start_abgabe
    from gateway.config import load_config
    from gateway.errors import AbgabeError

    config = load_config(config_path)
    try:
        started = asyncio.run(start_abgabe(config, akte, to))
    except AbgabeError as exc:
        click.echo(f"NOT STARTED {akte} -> {to}: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    base = config.http.public_url or f"http://{config.http.host}:{config.http.port}"
    answer = response(started, f"{base.rstrip('/')}/v1/processes/{started.abgabe.prozess_id}")
    if as_json:
        click.echo(answer.model_dump_json(indent=2))
        return
    what = "already open" if started.existing else "started"
    click.echo(f"Abgabe of {akte} to {answer.partner} {what}")
    click.echo(f"  message    {answer.message_id}")
    click.echo(f"  ProzessID  {answer.prozess_id}")
    click.echo(f"  status     {answer.status_url}")
    click.echo(f"  follow it: ikz-gateway process show {answer.prozess_id} --config {config_path}")
