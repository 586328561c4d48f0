"""The ``ikz-gateway`` command line.

Commands print for people by default and for machines with ``--json``. No
command shows a stack trace: gateway errors print their message, anything
unexpected prints one line and a hint (``IKZ_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from adapters.xdomea import files
from adapters.xdomea.container import ContainerLimits
from contracts.xdomea import Finding, Nachricht, Schriftgutobjekt
from gateway import cli_abgabe, cli_aussonderung, cli_certs, cli_dev, cli_dms, logs
from gateway.errors import GatewayError
from schemas import catalog
from schemas.store import SchemaStore

if TYPE_CHECKING:
    from contracts.config import GatewayConfig, PartnerConfig

_DEFAULT_LIMITS = ContainerLimits()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    help="Log level of the JSON logs on stderr.",
)
def cli(log_level: str) -> None:
    """ikz-gateway: xdomea message gateway for inter-municipal cooperation."""
    logs.configure(log_level)


# --------------------------------------------------------------------------- validate


def _limit_options(func: Any) -> Any:
    options = [
        click.option(
            "--max-entries",
            type=int,
            default=_DEFAULT_LIMITS.max_entries,
            show_default=True,
            help="Most entries a container may have.",
        ),
        click.option(
            "--max-total-bytes",
            type=int,
            default=_DEFAULT_LIMITS.max_total_bytes,
            show_default=True,
            help="Most bytes a container may unpack to.",
        ),
        click.option(
            "--max-ratio",
            type=float,
            default=_DEFAULT_LIMITS.max_ratio,
            show_default=True,
            help="Highest compression ratio of a large entry.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _limits(max_entries: int, max_total_bytes: int, max_ratio: float) -> ContainerLimits:
    return ContainerLimits(
        max_entries=max_entries, max_total_bytes=max_total_bytes, max_ratio=max_ratio
    )


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document for machines.")
@_limit_options
def validate(
    paths: Sequence[Path], as_json: bool, max_entries: int, max_total_bytes: int, max_ratio: float
) -> None:
    """Validate xdomea messages (XML) or containers (ZIP).

    Exit code 0: all valid; 1: some invalid; 2: some unusable (unreadable, unsafe,
    not xdomea, unsupported version).
    """
    limits = _limits(max_entries, max_total_bytes, max_ratio)
    results = [files.check_file(path, limits=limits) for path in paths]
    exit_code = max(r.verdict.exit_code for r in results)
    if as_json:
        click.echo(
            json.dumps(
                {"exit_code": exit_code, "results": [_check_json(r) for r in results]},
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        for result in results:
            _print_check(result)
    sys.exit(exit_code)


def _print_check(result: files.FileCheck) -> None:
    if result.error is not None:
        click.echo(f"UNUSABLE {result.path}: {result.error.message}")
        return
    message = result.nachricht
    summary = ""
    if message is not None:
        documents = sum(1 for e in result.entries if e.role == "primaerdokument")
        summary = (
            f" (xdomea {message.version} {message.typ.element}, ProzessID "
            f"{message.kopf.prozess_id}"
            + (f", {documents} documents" if result.container else "")
            + ")"
        )
    label = "VALID" if result.verdict is files.Verdict.VALID else "INVALID"
    click.echo(f"{label} {result.path}{summary}")
    for finding in result.findings:
        click.echo("  " + _finding_text(finding))


def _finding_text(finding: Finding) -> str:
    where = []
    if finding.line:
        where.append(f"line {finding.line}")
    if finding.path:
        where.append(finding.path)
    prefix = f"{finding.severity.value}: " + (" ".join(where) + ": " if where else "")
    return prefix + finding.message


def _check_json(result: files.FileCheck) -> dict[str, Any]:
    message = result.nachricht
    return {
        "path": result.path,
        "status": result.verdict.value,
        "kind": result.kind,
        "version": message.version if message else None,
        "message_type": message.typ.element if message else None,
        "prozess_id": message.kopf.prozess_id if message else None,
        "error": {"kind": result.error.kind, "message": result.error.message}
        if result.error
        else None,
        "findings": [f.model_dump(mode="json") for f in result.findings],
        "entries": [e.model_dump(mode="json") for e in result.entries],
    }


# --------------------------------------------------------------------------- inspect


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the message view as JSON.")
@_limit_options
def inspect(
    path: Path, as_json: bool, max_entries: int, max_total_bytes: int, max_ratio: float
) -> None:
    """Show the Kopf and the Schriftgutobjekt tree, with document hashes."""
    result = files.check_file(path, limits=_limits(max_entries, max_total_bytes, max_ratio))
    message = result.nachricht
    if result.error is not None or message is None:
        message_text = result.error.message if result.error else "unreadable"
        click.echo(f"UNUSABLE {result.path}: {message_text}", err=True)
        sys.exit(2)
    hashes = {e.name: e for e in result.entries}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "path": result.path,
                    "status": result.verdict.value,
                    "message": message.model_dump(mode="json"),
                    "entries": [e.model_dump(mode="json") for e in result.entries],
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        _print_message(message, hashes, result)
    sys.exit(result.verdict.exit_code)


def _print_message(message: Nachricht, hashes: dict[str, Any], result: files.FileCheck) -> None:
    kopf = message.kopf
    rows = [
        ("xdomea", f"{message.version}  {message.typ.element}"),
        ("ProzessID", kopf.prozess_id),
        ("Nachrichtentyp", kopf.nachrichtentyp),
        (
            "Erstellungszeitpunkt",
            kopf.erstellungszeitpunkt.isoformat() if kopf.erstellungszeitpunkt else "-",
        ),
        ("Absender", _kontakt(kopf.absender)),
        ("Empfänger", _kontakt(kopf.empfaenger)),
        ("Status", result.verdict.value),
    ]
    for label, value in rows:
        click.echo(f"{label:<21} {value}")
    click.echo("Schriftgutobjekte")
    objects = message.schriftgutobjekte
    if not objects:
        click.echo("  (none)")
    for index, sgo in enumerate(objects):
        _print_tree(
            sgo, "  ", index == len(objects) - 1, hashes, in_container=result.container is not None
        )
    unreferenced = [e for e in result.entries if e.role == "unreferenced"]
    for entry in unreferenced:
        click.echo(f"Unreferenced file    {entry.name}  sha256 {entry.sha256}  {entry.size} bytes")
    for finding in result.findings:
        click.echo("  " + _finding_text(finding))


def _kontakt(kontakt: Any) -> str:
    kennung = kontakt.behoerdenkennung
    text = f"{kennung.praefix or '-'}:{kennung.kennung or '-'}" if kennung else "-"
    if kontakt.institution:
        text += f"  {kontakt.institution}"
    return text


def _print_tree(
    sgo: Schriftgutobjekt, indent: str, last: bool, hashes: dict[str, Any], *, in_container: bool
) -> None:
    branch = "└─ " if last else "├─ "
    label = f"{sgo.art.value} {sgo.uuid}"
    if sgo.betreff:
        label += f'  "{sgo.betreff}"'
    if sgo.kennzeichen:
        label += f"  [{sgo.kennzeichen}]"
    click.echo(indent + branch + label)
    child_indent = indent + ("   " if last else "│  ")
    files_lines = []
    for version in sgo.versionen:
        for fmt in version.formate:
            name = fmt.primaerdokument.dateiname
            entry = hashes.get(name)
            if entry is not None:
                detail = f"sha256 {entry.sha256}  {entry.size} bytes"
            elif in_container:
                detail = "MISSING from container"
            else:
                detail = "(not in a container)"
            files_lines.append(
                f"v{version.nummer or '?'} {fmt.name_code or '?'}/{fmt.version or '?'}  "
                f"{name}  {detail}"
            )
    children = sgo.kinder
    for i, line in enumerate(files_lines):
        is_last = i == len(files_lines) - 1 and not children
        click.echo(child_indent + ("└─ " if is_last else "├─ ") + line)
    for i, child in enumerate(children):
        _print_tree(child, child_indent, i == len(children) - 1, hashes, in_container=in_container)


# --------------------------------------------------------------------------- schemas


@cli.group()
def schemas() -> None:
    """Install and check the xdomea schemas (XSDs) the gateway validates against."""


@schemas.command("list")
@click.option("--json", "as_json", is_flag=True)
def schemas_list(as_json: bool) -> None:
    """Show which xdomea versions are installed and verified."""
    store = SchemaStore()
    statuses = [store.status(v) for v in catalog.versions()]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "root": str(store.root),
                    "versions": [
                        {
                            "version": s.version,
                            "installed": s.installed,
                            "verified": s.verified,
                            "namespace": catalog.get(s.version).namespace,
                            "xrepository_id": catalog.get(s.version).xrepository_id,
                            "problems": list(s.problems),
                        }
                        for s in statuses
                    ],
                },
                indent=2,
            )
        )
        return
    source = "IKZ_SCHEMA_DIR" if os.environ.get("IKZ_SCHEMA_DIR") else "user cache"
    click.echo(f"schema root: {store.root} ({source})")
    for status in statuses:
        state = (
            "verified" if status.verified else ("DAMAGED" if status.installed else "not installed")
        )
        click.echo(f"  {status.version:<7} {state:<14} {catalog.get(status.version).namespace}")
        if status.installed and not status.verified:
            for problem in status.problems:
                click.echo(f"          {problem}")
    if not any(s.verified for s in statuses):
        click.echo(
            "Install schemas with 'ikz-gateway schemas import DIR|ZIP' or "
            "'ikz-gateway schemas fetch all'."
        )


@schemas.command("import")
@click.argument("source", type=click.Path(path_type=Path))
def schemas_import(source: Path) -> None:
    """Install schemas from a directory or ZIP (files are matched by their pinned SHA-256)."""
    report = SchemaStore().import_source(source)
    click.echo(f"installed xdomea {', '.join(report.installed)} from {source}")
    for version, why in report.skipped.items():
        click.echo(f"  not installed {version}: {why}")


@schemas.command("fetch")
@click.argument("version")
@click.option(
    "--url",
    "url_template",
    default=None,
    help=(
        "Download URL template ({version}, {xrepository_id}); "
        "default: XRepository or $IKZ_SCHEMA_FETCH_URL."
    ),
)
def schemas_fetch(version: str, url_template: str | None) -> None:
    """Download a version (or 'all') from XRepository and install it after verifying every file."""
    from schemas import fetch

    store = SchemaStore()
    if version == "all":
        reports = asyncio.run(fetch.fetch_all(store, url_template=url_template))
        installed = sorted({v for r in reports for v in r.installed})
    else:
        if version not in catalog.versions():
            raise click.BadParameter(
                f"unknown version {version}; known: {', '.join(catalog.versions())} or 'all'"
            )
        installed = asyncio.run(fetch.fetch(version, store, url_template=url_template)).installed
    click.echo(f"installed xdomea {', '.join(installed)} into {store.root}")


# --------------------------------------------------------------------------- operations

_CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("gateway.toml"),
    show_default=True,
    help="The gateway's configuration file.",
)


@cli.command()
@_CONFIG_OPTION
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=None,
    help="Gateway processes on the one listener (default: [http] processes, else 1).",
)
def serve(config_path: Path, processes: int | None) -> None:
    """Run the gateway: HTTP API, delivery workers and drop folders, until SIGINT/SIGTERM.

    With more than one process a supervisor prepares the journal once, starts the
    processes and passes stop signals on; if one dies, it stops the rest and exits 1.
    """
    from gateway import supervisor, tls
    from gateway.app import serve as run_gateway
    from gateway.config import load_config

    config = load_config(config_path)
    tls.check_files(config).raise_for_errors(config_path)
    count = processes if processes is not None else config.http.processes
    if count == 1:
        run_gateway(config)
        return
    code = supervisor.run(config, count)
    if code:
        sys.exit(code)


@cli.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_CONFIG_OPTION
def send(path: Path, config_path: Path) -> None:
    """Hand a container or message to this gateway as the node itself; it routes and delivers it."""
    from gateway.app import send_file
    from gateway.config import load_config
    from gateway.errors import IntakeRejected

    config = load_config(config_path)
    try:
        accepted = asyncio.run(send_file(config, path))
    except IntakeRejected as exc:
        click.echo(f"REFUSED {path}: {exc.title}: {exc.message}")
        for finding in exc.findings:
            click.echo("  " + _finding_text(finding))
        sys.exit(1)
    state = "already accepted before as" if accepted.duplicate else "accepted as"
    click.echo(f"{path.name} {state} message {accepted.message_id}")


@cli.group("config")
def config_group() -> None:
    """Check configuration files."""


@config_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def config_check(path: Path) -> None:
    """Validate a gateway.toml and show what it sets up; exit 1 when it is invalid."""
    from gateway import tls
    from gateway.config import load_config, missing_secrets

    try:
        config = load_config(path)
        tls_check = tls.check_files(config)
        tls_check.raise_for_errors(path)
        if config.xta is not None and config.xta.enabled:
            from adapters.xta.schema import XtaSchema

            XtaSchema(config.xta.wsdl)  # the service cannot start without its schemas
    except GatewayError as exc:
        click.echo(f"INVALID {exc}")
        sys.exit(1)
    click.echo(f"VALID {path}: node {config.node.id} ({config.node.behoerdenkennung})")
    click.echo(f"  journal      {config.storage.journal}")
    click.echo(f"  blobs        {config.storage.blobs}")
    click.echo(f"  http         {config.http.host}:{config.http.port}{_tls_summary(config)}")
    retention = config.retention
    if retention.purge_after_days is None:
        click.echo("  retention    keep everything (db purge forgets finished processes)")
    else:
        click.echo(
            f"  retention    forget processes finished {retention.purge_after_days:g} days ago, "
            f"checked every {retention.interval_hours:g} h"
        )
    for partner in config.partners:
        click.echo(
            f"  partner      {partner.id} ({partner.behoerdenkennung}){_credentials(partner)}"
        )
    for name, destination in config.destinations.items():
        click.echo(f"  destination  {name} ({destination.type})")
    for route in config.routes:
        codes = ",".join(route.nachrichtentyp) or "any"
        click.echo(f"  route        {route.empfaenger} [{codes}] -> {route.destination}")
    for folder in config.dropfolders:
        click.echo(f"  dropfolder   {folder.directory} (as {folder.partner})")
    if config.dms is not None:
        where = config.dms.dmsin.wsdl if config.dms.dmsin else config.dms.directory
        click.echo(
            f"  own DMS      {config.dms.backend} {where} "
            f"(abgabe start; on_completed = {config.processes.on_completed})"
        )
    if config.operator is not None:
        click.echo("  operator     token for POST /v1/abgaben")
    if config.xta is not None and config.xta.enabled:
        click.echo(f"  xta          {config.xta.path} (WSDL {config.xta.wsdl})")
    for name in missing_secrets(config):
        click.echo(f"  warning: environment variable {name} is not set")
    for warning in tls_check.warnings:
        click.echo(f"  warning: {warning}")


def _tls_summary(config: GatewayConfig) -> str:
    """How the listener is secured, for ``config check``."""
    server = config.http.tls
    if server is None:
        return " (plain HTTP)"
    if server.client_ca is None:
        return " (HTTPS)"
    required = "required" if server.require_client_certificate else "optional"
    return f" (HTTPS, client certificates {required})"


def _credentials(partner: PartnerConfig) -> str:
    """Which credentials a partner must present, for ``config check``."""
    needed = (["token"] if partner.has_token else []) + (
        ["certificate"] if partner.certificate_bound else []
    )
    return f" by {' + '.join(needed)}"


@cli.group("db")
def db_group() -> None:
    """Manage the journal database."""


@db_group.command("upgrade")
@_CONFIG_OPTION
def db_upgrade(config_path: Path) -> None:
    """Apply the journal's schema migrations (safe to run again)."""
    from gateway.config import load_config
    from gateway.journal.store import Journal

    config = load_config(config_path)

    async def upgrade() -> None:
        journal = Journal.from_url(config.storage.journal)
        try:
            await journal.upgrade()
        finally:
            await journal.close()

    asyncio.run(upgrade())
    click.echo(f"journal {config.storage.journal} is up to date")


@db_group.command("purge")
@_CONFIG_OPTION
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Forget processes in which nothing happened for this many days.",
)
@click.option("--dry-run", is_flag=True, help="Only list the processes that would be forgotten.")
@click.option("--json", "as_json", is_flag=True)
def db_purge(config_path: Path, days: float, dry_run: bool, as_json: bool) -> None:
    """Forget finished processes older than N days: their messages, deliveries and history.

    A process is finished when every delivery is delivered, no receipt is owed,
    an Abgabe sent has its 0402 and an Aussonderung its 0506. Dead letters and
    anything newer stay. Blob files stay until 'blobs prune'.
    """
    from datetime import timedelta

    from gateway import retention
    from gateway.config import load_config
    from gateway.journal.store import utcnow

    config = load_config(config_path)
    cutoff = utcnow() - timedelta(days=days)
    report = _with_journal(
        config_path,
        lambda journal: retention.purge(
            journal, own_kennung=config.node.behoerdenkennung, cutoff=cutoff, dry_run=dry_run
        ),
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "cutoff": cutoff.isoformat(),
                    "dry_run": dry_run,
                    "finished": report.finished,
                    "purged": [p.model_dump(mode="json") for p in report.purged],
                    "messages": report.messages,
                    "content_bytes": report.content_bytes,
                    "unreferenced_blobs": report.unreferenced_blobs,
                },
                indent=2,
            )
        )
        return
    if dry_run:
        click.echo(
            f"{len(report.finished)} process(es) finished before {cutoff.isoformat()} "
            "would be forgotten (dry run, nothing deleted):"
        )
        for key in report.finished:
            click.echo(f"  {key}")
        return
    for purged in report.purged:
        click.echo(
            f"  forgot {purged.prozess_id}: {purged.messages} message(s), "
            f"last received {purged.last_received_at.isoformat()}"
        )
    click.echo(
        f"forgot {len(report.purged)} process(es) finished before {cutoff.isoformat()}: "
        f"{report.messages} message(s), {report.content_bytes} bytes of content kept in the "
        "journal"
    )
    if report.unreferenced_blobs:
        click.echo(
            f"{len(report.unreferenced_blobs)} content(s) no message refers to any more may "
            f"have files under {config.storage.blobs / 'sha256'}: with every gateway on it "
            "stopped, 'ikz-gateway blobs prune' removes them"
        )


@cli.group("blobs")
def blobs_group() -> None:
    """Manage the blob store."""


@blobs_group.command("prune")
@_CONFIG_OPTION
@click.option("--dry-run", is_flag=True, help="Only list the files that would be removed.")
@click.option("--json", "as_json", is_flag=True)
def blobs_prune(config_path: Path, dry_run: bool, as_json: bool) -> None:
    """Remove content files no message refers to any more (after db purge).

    Runs only while no gateway has the blob store open: stop every serve using
    it first. A gateway started while the prune runs refuses to start until it
    has finished.
    """
    from gateway import blob_prune
    from gateway.config import load_config

    config = load_config(config_path)
    report = _with_journal(
        config_path,
        lambda journal: blob_prune.prune(journal, config.storage.blobs, dry_run=dry_run),
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "dry_run": dry_run,
                    "checked": report.checked,
                    "removed": report.removed,
                    "removed_bytes": report.removed_bytes,
                },
                indent=2,
            )
        )
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {len(report.removed)} of {report.checked} content file(s) in "
        f"{config.storage.blobs}, {report.removed_bytes} bytes"
        + (" (dry run, nothing deleted)" if dry_run else "")
    )


def _with_journal(config_path: Path, action: Any) -> Any:
    """Run ``action(journal)`` against the configured journal and close it."""
    from gateway.config import load_config
    from gateway.journal.store import Journal

    config = load_config(config_path)

    async def run() -> Any:
        journal = Journal.from_url(config.storage.journal)
        try:
            await journal.upgrade()
            return await action(journal)
        finally:
            await journal.close()

    return asyncio.run(run())


@cli.command()
@click.argument("message_id", required=False)
@_CONFIG_OPTION
@click.option(
    "--state", type=click.Choice(["accepted", "delivered", "dead"]), help="Only this state."
)
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def status(
    message_id: str | None, config_path: Path, state: str | None, limit: int, as_json: bool
) -> None:
    """Show one message with its deliveries and attempts, or the latest messages."""
    from contracts.journal import MessageState

    if message_id:
        from datetime import timedelta

        from contracts.api import MessageResponse
        from gateway.config import load_config

        timeout = timedelta(seconds=load_config(config_path).processes.receipt_timeout_seconds)

        async def detail(journal: Any) -> MessageResponse:
            view = await journal.get_message(message_id)
            owed = await journal.receipts_owed([message_id], timeout=timeout)
            return MessageResponse(**dict(view), receipts=tuple(owed))

        response = _with_journal(config_path, detail)
        if as_json:
            click.echo(response.model_dump_json(indent=2))
        else:
            _print_message_view(response, detailed=True)
            _print_receipts(response.receipts)
        return
    views = _with_journal(
        config_path,
        lambda j: j.list_messages(state=MessageState(state) if state else None, limit=limit),
    )
    _print_views(views, as_json)


@cli.command("dead-letters")
@_CONFIG_OPTION
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def dead_letters(config_path: Path, limit: int, as_json: bool) -> None:
    """List messages with a dead-lettered delivery and why."""
    from contracts.journal import MessageState

    views = _with_journal(
        config_path, lambda j: j.list_messages(state=MessageState.DEAD, limit=limit)
    )
    _print_views(views, as_json)


@cli.command()
@click.argument("message_id")
@_CONFIG_OPTION
def retry(message_id: str, config_path: Path) -> None:
    """Put a message's dead-lettered deliveries back into the queue."""
    count = _with_journal(config_path, lambda j: j.replay(message_id))
    if count == 0:
        click.echo(f"message {message_id} has no dead-lettered delivery; nothing to retry")
        sys.exit(1)
    click.echo(f"requeued {count} delivery(ies) of message {message_id}")


def _print_receipts(receipts: Sequence[Any]) -> None:
    """The receipts this gateway owes, one line each (overdue ones flagged)."""
    for receipt in receipts:
        flag = "  OVERDUE" if receipt.overdue else ""
        made = f" as message {receipt.receipt_message_id}" if receipt.receipt_message_id else ""
        error = f"  last error: {receipt.last_error}" if receipt.last_error else ""
        click.echo(
            f"    receipt {receipt.code} {receipt.state.value}{made} "
            f"attempts {receipt.attempts}{flag}{error}"
        )


def _print_views(views: Sequence[Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([v.model_dump(mode="json") for v in views], indent=2))
        return
    if not views:
        click.echo("no messages")
    for view in views:
        _print_message_view(view, detailed=False)


def _print_message_view(view: Any, *, detailed: bool) -> None:
    click.echo(
        f"{view.id}  {view.state.value:<9} {view.received_at:%Y-%m-%d %H:%M:%S}  "
        f"{view.message_element}  ProzessID {view.prozess_id}  from {view.partner_id}"
    )
    for delivery in view.deliveries:
        error = f"  last error: {delivery.last_error}" if delivery.last_error else ""
        click.echo(
            f"    -> {delivery.destination:<16} {delivery.state.value:<9} "
            f"attempts {delivery.attempts}{error}"
        )
        if detailed:
            for attempt in delivery.history:
                finished = f"{attempt.finished_at:%H:%M:%S}" if attempt.finished_at else "running"
                click.echo(
                    f"       #{attempt.number} {attempt.started_at:%H:%M:%S}-{finished} "
                    f"{attempt.outcome or '-'} by {attempt.worker}"
                    + (f": {attempt.error}" if attempt.error else "")
                )


# --------------------------------------------------------------------------- demo


def _demo_journal_url(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> str | None:
    """Refuse an unsupported ``--journal`` URL before anything runs (exit code 2)."""
    if value is None:
        return None
    from gateway.demo_journals import check_url
    from gateway.errors import JournalError

    try:
        return check_url(value)
    except JournalError as exc:
        raise click.BadParameter(str(exc)) from exc


@cli.command()
@click.option(
    "--scenario",
    type=click.Choice(["abgabe", "aussonderung", "xta"]),
    default="abgabe",
    show_default=True,
    help=(
        "Which end-to-end flow to run: abgabe = two Kommunen exchange an Abgabe; xta = a "
        "Fachverfahren files a Dokument into the DMS over XTA 2 and fetches the answer."
    ),
)
@click.option(
    "--stages",
    type=click.Choice(["2", "4"]),
    default="4",
    show_default=True,
    help="Aussonderung scenario: the archive's stage model.",
)
@click.option(
    "--container",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Send this container instead of one the demo builds; A and B take its Kopf's parties.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep all files here (default: a temporary directory, removed afterwards).",
)
@click.option(
    "--xdomea-version",
    type=click.Choice(list(catalog.versions())),
    default="3.1.0",
    show_default=True,
    help="xdomea version of the container the demo builds.",
)
@click.option(
    "--journal",
    metavar="URL",
    callback=_demo_journal_url,
    help=(
        "Where both gateways' journals go: sqlite:///PATH (two files beside PATH) or "
        "postgresql://USER@HOST:PORT/DB (two fresh databases on that server, created "
        "through DB). Removed at the end unless --workdir is given. "
        "Default: a SQLite file in each gateway's folder."
    ),
)
@click.option(
    "--dms",
    type=click.Choice(["sims", "fs", "sim"]),
    help=(
        "sims (the default): A and B each have a dmsin simulator on 127.0.0.1, the gateways "
        "talk mutual TLS, and A's operator starts the Abgabe from A's DMS (abgabe start). "
        "fs / sim: A sends a container it builds (or --container) with 'send' over HTTP, "
        "and B files it into its transfer folder (fs) or a dmsin simulator (sim); the "
        "default with --container is fs."
    ),
)
@click.option(
    "--dms-wsdl",
    type=click.Path(dir_okay=False, path_type=Path),
    help=(
        "The dmsin WSDL file the simulator serves (--dms sim). Default: $IKZ_DMSIN_WSDL, "
        "else ../shared/wsdl/dmsin/dmsin-eai-1.10.wsdl beside the project."
    ),
)
@click.option(
    "--xta-wsdl",
    type=click.Path(dir_okay=False, path_type=Path),
    help=(
        "XTA.wsdl for --scenario xta (its .xsd files beside it). Default: $IKZ_XTA_WSDL, "
        "else ../shared/wsdl/xta2/XTA.wsdl beside the project."
    ),
)
def demo(
    scenario: str,
    stages: str,
    container: Path | None,
    workdir: Path | None,
    xdomea_version: str,
    journal: str | None,
    dms: str | None,
    dms_wsdl: Path | None,
    xta_wsdl: Path | None,
) -> None:
    """Run an end-to-end Abgabe between two Kommunen and check every document and receipt.

    Exits 0 only when every document arrived bit-identical, every receipt arrived and
    A's process completed (with --dms sims also: the Abgabevermerk is on A's Akte);
    2 when the journals cannot be set up (unsupported URL, unreachable server) or,
    with --dms sim or sims, the dmsin WSDL cannot be found.
    """
    import tempfile

    from gateway.demo import run_demo

    if scenario == "aussonderung":
        click.echo(f"ikz-gateway demo: scenario {scenario}")
        _demo_aussonderung(workdir, int(stages), xdomea_version, dms_wsdl)
    if scenario == "xta":
        click.echo(f"ikz-gateway demo: scenario {scenario}")
        _demo_xta(workdir, xta_wsdl, dms_wsdl)
    if dms is None:
        dms = "fs" if container is not None else "sims"
        if dms == "sims" and dms_wsdl is None:
            from gateway.demo_dms import find_wsdl

            try:
                find_wsdl(dms_wsdl)
            except GatewayError as exc:
                # Without the WSDL file (not shipped) the DMS simulators cannot run; the
                # transfer-folder flow needs none, so the plain ``demo`` still works.
                click.echo(f"note: {exc.message}; running --dms fs instead")
                dms = "fs"
    if dms == "sims" and container is not None:
        raise click.UsageError(
            "--container sends your own container with 'send'; combine it with --dms fs or "
            "--dms sim (--dms sims exports the Akte from A's DMS instead)"
        )

    click.echo(f"ikz-gateway demo: scenario {scenario} (--dms {dms})")
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        # --workdir keeps everything, journals included: its gateway.toml files use them.
        passed = run_demo(
            workdir,
            container=container,
            version=xdomea_version,
            echo=click.echo,
            journal=journal,
            keep_journals=True,
            dms=dms,
            dms_wsdl=dms_wsdl,
        )
        click.echo(f"  files kept in {workdir}")
    else:
        with tempfile.TemporaryDirectory(prefix="ikz-demo-") as tmp:
            passed = run_demo(
                Path(tmp),
                container=container,
                version=xdomea_version,
                echo=click.echo,
                journal=journal,
                dms=dms,
                dms_wsdl=dms_wsdl,
            )
    sys.exit(0 if passed else 1)


def _echo_aussonderung(details: Any) -> None:
    """The Aussonderung part of ``process show``: objects, Bewertungen, results, actions."""
    click.echo(f"  archive {details.archive} ({details.stages}-stage)")
    for uuid, adresse in details.objekte.items():
        bewertung = details.bewertungen.get(uuid.lower(), "-")
        click.echo(f"  offered {uuid} (DMS {adresse})  Bewertung {bewertung}")
    for outcome in details.ergebnisse:
        result = "archived" if outcome.erfolgreich else "FAILED"
        extra = f" Archivkennung {outcome.archivkennung}" if outcome.archivkennung else ""
        reasons = f": {'; '.join(outcome.fehlermeldungen)}" if outcome.fehlermeldungen else ""
        click.echo(f"  0506 {outcome.objekt}: {result}{extra}{reasons}")
    for action in details.aktionen:
        detail = f" ({action.detail})" if action.detail else ""
        click.echo(
            f"  DMS action {action.objekt}: {action.ergebnis}, {action.action}{detail} "
            f"at {action.at.isoformat()}"
        )
    for problem in details.probleme:
        click.echo(f"  problem: {problem}")


def _demo_aussonderung(
    workdir: Path | None, stages: int, xdomea_version: str, dms_wsdl: Path | None
) -> None:
    """``demo --scenario aussonderung``: exits 0 only when every check passed."""
    import tempfile

    from gateway.demo_aussonderung import run_aussonderung_demo

    # The x-man default; 2.x Aussonderungen work as well (no 0507 then).
    version = xdomea_version if xdomea_version != "3.1.0" else "3.0.0"
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        passed = run_aussonderung_demo(
            workdir, stages=stages, version=version, echo=click.echo, dms_wsdl=dms_wsdl
        )
        click.echo(f"  files kept in {workdir}")
    else:
        with tempfile.TemporaryDirectory(prefix="ikz-demo-") as tmp:
            passed = run_aussonderung_demo(
                Path(tmp), stages=stages, version=version, echo=click.echo, dms_wsdl=dms_wsdl
            )
    sys.exit(0 if passed else 1)


def _demo_xta(workdir: Path | None, xta_wsdl: Path | None, dms_wsdl: Path | None) -> None:
    """``demo --scenario xta`` (``gateway/demo_xta.py``); exits 0 only when it passed."""
    import tempfile

    from gateway import demo_dms, demo_xta

    wsdls = {"xta_wsdl": demo_xta.find_wsdl(xta_wsdl), "dms_wsdl": demo_dms.find_wsdl(dms_wsdl)}
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        passed = demo_xta.run_xta_demo(workdir, echo=click.echo, **wsdls)
        click.echo(f"  files kept in {workdir}")
    else:
        with tempfile.TemporaryDirectory(prefix="ikz-demo-xta-") as tmp:
            passed = demo_xta.run_xta_demo(Path(tmp), echo=click.echo, **wsdls)
    sys.exit(0 if passed else 1)


# --------------------------------------------------------------------------- dev

# Each dev tool lives in its own module and registers in the ``dev`` group.
cli_dev.dev.add_command(cli_certs.make_certs)
cli.add_command(cli_dev.dev)
cli.add_command(cli_dms.dms)
cli.add_command(cli_abgabe.abgabe)
cli.add_command(cli_aussonderung.aussonderung)


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: run the CLI, turning every error into a clear message."""
    try:
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="ikz-gateway",
            standalone_mode=False,
        )
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except GatewayError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("IKZ_DEBUG"):
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (set IKZ_DEBUG=1 for details)", err=True
        )
        sys.exit(70)
    sys.exit(0)


@cli.group("process")
def process_group() -> None:
    """Processes (ProzessIDs) and the receipts they are waiting for."""


@process_group.command("show")
@click.argument("prozess_id")
@_CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the process as JSON.")
def process_show(prozess_id: str, config_path: Path, as_json: bool) -> None:
    """Show a process's state (sent, received, completed, …), overdue flag and timeline."""
    from gateway import processes
    from gateway.blobs import BlobStore
    from gateway.config import load_config
    from gateway.errors import NotFound

    config = load_config(config_path)

    async def derive(journal: Any) -> Any:
        views = await journal.process(prozess_id)
        if not views:
            raise NotFound(f"no message with ProzessID {prozess_id} in this gateway's journal")
        blobs = BlobStore(config.storage.blobs, inline=journal.inline_content)
        try:
            return await processes.status(config, journal, blobs, prozess_id, views)
        finally:
            blobs.close()

    status = _with_journal(config_path, derive)
    if as_json:
        click.echo(status.model_dump_json(indent=2))
        return
    flag = "  OVERDUE" if status.overdue else ""
    click.echo(f"process {status.prozess_id}: {status.state.value}{flag}")
    if status.sent_at is not None:
        click.echo(f"  sent at {status.sent_at.isoformat()}")
    if status.due_by is not None:
        what = "archive's answer" if status.aussonderung is not None else "receipts"
        click.echo(f"  {what} due by {status.due_by.isoformat()}")
    if status.abgabe is not None:
        abgabe = status.abgabe
        click.echo(f"  Abgabe of {abgabe.akte} to {abgabe.partner_id} ({abgabe.state.value})")
        if abgabe.completion_state is not None:
            at = abgabe.completed_at.isoformat() if abgabe.completed_at else ""
            click.echo(
                f"  {at}  completion {abgabe.completion_action}: "
                f"{abgabe.completion_state.value} ({abgabe.completion_detail})"
            )
        else:
            click.echo(f"  completion {abgabe.completion_action}: waiting for the 0402")
    if status.receipts:
        click.echo("  receipts this gateway owes in the process:")
        _print_receipts(status.receipts)
    if status.aussonderung is not None:
        _echo_aussonderung(status.aussonderung)
    for failure in status.failures:
        where = failure.objekt or "(whole message)"
        click.echo(f"  not imported: {where}: {'; '.join(failure.fehlermeldungen)}")
    for entry in status.timeline:
        click.echo(
            f"  {entry.at.isoformat()}  {entry.nachrichtentyp} {entry.message_element}  "
            f"{entry.absender} -> {entry.empfaenger}  sha256 {entry.sha256}  {entry.state.value}"
        )
    if status.dms_objects:
        click.echo("  DMS objects filed by this gateway:")
    for objekt in status.dms_objects:
        # "found": an earlier import had made it (a redelivery, a second Abgabe).
        click.echo(
            f"  {objekt.at.isoformat()}  {objekt.status} {objekt.art} {objekt.uuid}  "
            f"{objekt.destination}: {objekt.adresse}  (message {objekt.message_id})"
        )
        for inhalt in objekt.inhalte:
            click.echo(f"      {inhalt.dateiname}  sha256 {inhalt.sha256}  {inhalt.status}")
