"""``ikz-gateway dms …``: work with the DMS behind a ``type = "dms"`` destination.

``dms export ADDRESS`` writes the Akte or Vorgang at that DMS address as an
xdomea 0401 container (``adapters.dms.exporter``): Absender is this gateway's
Behördenkennung, Empfänger the one given.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from contracts.config import DmsDestination
from contracts.xdomea import Behoerdenkennung, Kontakt
from gateway.errors import ConfigError


@click.group("dms")
def dms() -> None:
    """The DMS behind a dms destination: export Akten and Vorgänge."""


@dms.command("export")
@click.argument("address")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The gateway's gateway.toml.",
)
@click.option("--destination", "name", help="The dms destination (default: the only one).")
@click.option(
    "--empfaenger",
    required=True,
    metavar="PRAEFIX:KENNUNG",
    help="Behördenkennung of the recipient.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder the container is written to.",
)
@click.option("--xdomea-version", default="3.1.0", show_default=True)
def export(
    address: str,
    config_path: Path,
    name: str | None,
    empfaenger: str,
    out: Path,
    xdomea_version: str,
) -> None:
    """Export the Akte or Vorgang at ADDRESS as an xdomea 0401 container."""
    from adapters.dms.destination import build_port
    from adapters.dms.exporter import export_0401
    from gateway.config import load_config

    config = load_config(config_path)
    candidates = {
        key: value
        for key, value in config.destinations.items()
        if isinstance(value, DmsDestination)
    }
    if name is None and len(candidates) == 1:
        name = next(iter(candidates))
    if name not in candidates:
        known = ", ".join(sorted(candidates)) or "none"
        raise ConfigError(
            f"name the dms destination with --destination (dms destinations: {known})",
            where=str(config_path),
        )
    port = build_port(candidates[name])

    async def run() -> tuple[Path, list[tuple[str, str]]]:
        try:
            result = await export_0401(
                port,
                address,
                out,
                version=xdomea_version,
                absender=_kontakt(config.node.behoerdenkennung),
                empfaenger=_kontakt(empfaenger),
            )
        finally:
            await port.close()
        return result.path, [(e.sha256, e.name) for e in result.entries]

    path, entries = asyncio.run(run())
    click.echo(f"exported {address} from {name!r} to {path}")
    for digest, entry in entries:
        click.echo(f"  {digest}  {entry}")


def _kontakt(kennung: str) -> Kontakt:
    praefix, separator, schluessel = kennung.partition(":")
    if not separator or not praefix or not schluessel:
        raise click.BadParameter(f"{kennung!r} is not a Behördenkennung like 060:4711")
    return Kontakt(behoerdenkennung=Behoerdenkennung(praefix=praefix, kennung=schluessel))
