"""``ikz-gateway dev webdav-server`` and ``dev archive-sim``: an archive on this machine.

``webdav-server`` shares a local folder over WebDAV on 127.0.0.1 (mount path
not ``/``, Basic authentication), the way an archive offers its transfer
directory; ``archive-sim`` plays the archive (x-man on the file level,
``adapters.archive.sim``) on a local folder or a WebDAV share. Both print one
line per fact (``url …``, ``folder …``) so scripts can read them, then run until
interrupted (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import click

from adapters.xdomea.naming import NamingStyle

_CODES = ("A", "B", "V")


@click.command("webdav-server")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to share (created if missing).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8091,
    show_default=True,
    help="TCP port on 127.0.0.1 (0: any free port).",
)
@click.option("--mount", default="/dav/archiv", show_default=True, help="Collection path.")
@click.option("--user", "username", default="gateway", show_default=True, help="Basic-auth user.")
@click.option(
    "--password-env",
    default="IKZ_WEBDAV_PASSWORD",
    show_default=True,
    help="Environment variable holding the user's password.",
)
@click.option(
    "--mkdir",
    "folders",
    multiple=True,
    metavar="NAME",
    help="Create this sub-folder in the share if missing (repeatable).",
)
def webdav_server(
    root: Path, port: int, mount: str, username: str, password_env: str, folders: Sequence[str]
) -> None:
    """Share a folder over WebDAV on 127.0.0.1 until Ctrl-C (for tests and demos only)."""
    from gateway.dev_webdav import webdav_server as serve

    password = os.environ.get(password_env)
    if not password:
        raise click.ClickException(
            f"environment variable {password_env} with the WebDAV password is not set; "
            f"set it (e.g. export {password_env}=…) or name another with --password-env"
        )
    for name in folders:
        if any(part in ("", ".", "..") for part in name.split("/")):
            raise click.BadParameter(f"{name!r} is no plain sub-folder", param_hint="--mkdir")
        (root / name).mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with serve(root, username=username, password=password, mount=mount, port=port) as server:
            click.echo(f"url {server.url}")
            click.echo(f"user {server.username}")
            sys.stdout.flush()
            stop.wait()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc


@click.command("archive-sim")
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="Local transfer directory (holding the two sub-folders).",
)
@click.option("--webdav-url", help="WebDAV collection URL of the transfer directory instead.")
@click.option("--user", "username", help="WebDAV Basic-auth user.")
@click.option("--password-env", help="Environment variable with the WebDAV password.")
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the archive's staged files and archived documents (created if missing).",
)
@click.option("--to-archive", default="to_archive", show_default=True, help="Agency → archive.")
@click.option("--from-archive", default="from_archive", show_default=True, help="Archive → agency.")
@click.option(
    "--bewertung",
    type=click.Choice(_CODES),
    default="A",
    show_default=True,
    help="Aussonderungsart of every offered Akte.",
)
@click.option(
    "--bewerte",
    multiple=True,
    metavar="UUID=CODE",
    help="Aussonderungsart of one object (repeatable), e.g. 1f0c…=V.",
)
@click.option("--fail", "fail_objects", multiple=True, metavar="UUID", help="Report as failed.")
@click.option(
    "--malformed-0502",
    type=click.Choice(["none", "schema", "xml"]),
    default="none",
    show_default=True,
    help="Answer offers with a 0502 the XSD refuses (schema) or that is no XML (xml).",
)
@click.option("--keep-files", is_flag=True, help="Leave processed files in the to-archive folder.")
@click.option(
    "--naming",
    type=click.Choice([s.value for s in NamingStyle]),
    default="long",
    show_default=True,
    help="How the archive names its answers.",
)
@click.option(
    "--settle", type=float, default=2.0, show_default=True, help="Seconds a file must rest."
)
@click.option(
    "--interval", type=float, default=1.0, show_default=True, help="Seconds between polls."
)
def archive_sim(
    folder: Path | None,
    webdav_url: str | None,
    username: str | None,
    password_env: str | None,
    store: Path,
    to_archive: str,
    from_archive: str,
    bewertung: str,
    bewerte: Sequence[str],
    fail_objects: Sequence[str],
    malformed_0502: str,
    keep_files: bool,
    naming: str,
    settle: float,
    interval: float,
) -> None:
    """Play an archive (x-man on the file level) on a transfer directory until Ctrl-C."""
    from adapters.archive.sim import ArchiveSimConfig, ArchiveSimulator
    from adapters.transfer.folders import open_folder
    from contracts.transfer import LocalFolderConfig, WebDavFolderConfig
    from gateway.errors import GatewayError

    if (folder is None) == (webdav_url is None):
        raise click.UsageError("give exactly one of --folder DIR and --webdav-url URL")
    bewertungen: dict[str, str] = {}
    for item in bewerte:
        uuid, _, code = item.partition("=")
        if not uuid or code not in _CODES:
            raise click.BadParameter(
                f"{item!r} is not UUID=CODE with CODE one of A, B, V", param_hint="--bewerte"
            )
        bewertungen[uuid] = code
    try:
        config = ArchiveSimConfig.model_validate(
            {
                "to_archive": to_archive,
                "from_archive": from_archive,
                "bewertung": bewertung,
                "bewertungen": bewertungen,
                "malformed_0502": malformed_0502,
                "fail_objects": frozenset(fail_objects),
                "remove_processed": not keep_files,
                "naming": naming,
                "settle_seconds": settle,
                "poll_interval_seconds": interval,
            }
        )
        location: LocalFolderConfig | WebDavFolderConfig
        if folder is not None:
            location = LocalFolderConfig(type="local", path=folder)
        else:
            location = WebDavFolderConfig(
                type="webdav", url=webdav_url or "", username=username, password_env=password_env
            )
        transfer = open_folder(location)
    except (ValueError, GatewayError) as exc:
        raise click.ClickException(str(exc)) from exc
    store.mkdir(parents=True, exist_ok=True)
    click.echo(f"folder {folder if folder is not None else webdav_url}")
    click.echo(f"store {store}")
    sys.stdout.flush()

    async def run() -> BaseException | None:
        simulator = ArchiveSimulator(transfer, config, store)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        task = asyncio.create_task(simulator.run())
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, stopper):
                pending.cancel()
            await asyncio.gather(task, stopper, return_exceptions=True)
            await transfer.close()
        return task.exception() if task.done() and not task.cancelled() else None

    failure = asyncio.run(run())
    if failure is not None:
        # E.g. the WebDAV share refuses the credentials: polling on cannot help.
        raise click.ClickException(str(failure))
