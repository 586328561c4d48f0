"""``ikz-gateway aussonderung …``: hand closed Akten of this node's DMS to an archive.

``aussonderung start --akten ADDRESS… --archive NAME`` exports the Akten from
``[dms]``, checks them against the archive's rules, and journals the 0501 (four
stages) or the 0503 (two stages) as the node itself; a running ``serve`` delivers
it into the archive's transfer folder and carries the process on with each answer
(``gateway.aussonderung``). ``process show PROZESS_ID`` shows where it stands.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from gateway.errors import ConfigError


@click.group("aussonderung")
def aussonderung() -> None:
    """Aussonderung: offer closed Akten to an archive and hand over what it values A."""


@aussonderung.command("start")
@click.option(
    "--akten",
    "akten",
    required=True,
    multiple=True,
    metavar="ADDRESS",
    help="DMS address of an Akte (or Vorgang) to offer; repeat for several, or separate by spaces.",
)
@click.option("--archive", "archive", required=True, help="The [archives.NAME] to hand over to.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("gateway.toml"),
    show_default=True,
    help="The gateway's configuration file.",
)
@click.option("--prozess-id", help="The process UUID (default: a fresh one).")
def start(akten: tuple[str, ...], archive: str, config_path: Path, prozess_id: str | None) -> None:
    """Offer (0501) or hand over (0503, two-stage archives) Akten from this node's DMS.

    Exits 0 once the message is journaled; 2 with the reason when an Akte is
    unknown, the DMS cannot be reached, the archive is not configured, or a check
    the archive would make fails (nothing is journaled then).
    """
    from adapters.dms.destination import build_port
    from gateway import aussonderung as engine
    from gateway.app import local_sender
    from gateway.blobs import BlobStore
    from gateway.config import load_config
    from gateway.intake import Intake
    from gateway.journal.store import Journal

    config = load_config(config_path)
    if config.dms is None:
        raise ConfigError(
            f"{config_path}: aussonderung start exports from this node's DMS; add a [dms] "
            "section with its backend"
        )
    adressen = [a for value in akten for a in value.split()]
    dms_config = config.dms

    async def run() -> engine.Started:
        journal = Journal.from_url(config.storage.journal)
        blobs = BlobStore(config.storage.blobs, inline=journal.inline_content)
        port = build_port(dms_config)
        try:
            await journal.upgrade()
            return await engine.start(
                config,
                akten=adressen,
                archive_name=archive,
                port=port,
                journal=journal,
                intake=Intake(config, journal, blobs),
                node=local_sender(config),
                prozess_id=prozess_id,
            )
        finally:
            await port.close()
            await journal.close()
            blobs.close()

    started = asyncio.run(run())
    what = "offered (0501)" if started.nachrichtentyp == "0501" else "handed over (0503)"
    click.echo(
        f"Aussonderung {started.prozess_id}: {len(started.objekte)} object(s) {what} to "
        f"archive {archive}; message {started.message_id}"
        + (" (journaled before)" if started.duplicate else "")
    )
    click.echo(f"  follow it with: ikz-gateway process show {started.prozess_id}")
