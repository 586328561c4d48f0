"""The journals of ``ikz-gateway demo``: one per gateway, derived from one URL.

``--journal`` says where the two gateways' journals live:

* not given: a SQLite file in each gateway's own folder (``data/journal.db``), as
  ``ikz-gateway serve`` has it by default;
* ``sqlite:///PATH``: two fresh files beside PATH, ``<stem>_demo_a_<random><suffix>``
  and ``<stem>_demo_b_<random><suffix>``;
* ``postgresql://USER@HOST:PORT/DB``: two fresh databases on that server,
  ``<DB>_demo_a_<random>`` and ``<DB>_demo_b_<random>``, created through a
  connection to DB (so USER needs the CREATEDB privilege).

The random part keeps the demo away from any existing journal. Whatever the demo
creates it removes when it ends, passed or not (files deleted, databases
dropped), unless it is told to keep them (``--workdir``): then the gateway.toml
files written there still point at live journals for ``ikz-gateway status``, and
the demo says how to remove them.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import JournalError, JournalUnavailable
from gateway.journal import write_lock

Echo = Callable[[str], None]

#: Keys of the two demo gateways, as ``demo_gateways.two_gateways`` names them.
GATEWAYS = ("a", "b")
_POSTGRES = ("postgresql://", "postgresql+psycopg://")
#: PostgreSQL truncates identifiers at 63 bytes; the derived suffix takes 16.
_MAX_BASE = 40


@dataclass
class DemoJournals:
    """Journal URL per demo gateway (``None``: the default SQLite file in its folder)."""

    urls: dict[str, str | None]
    #: What was created, for the closing message: ``"database x"`` or a file path.
    created: list[str] = field(default_factory=list)

    def describe(self, key: str) -> str:
        """The journal of one gateway for people: its URL without a password."""
        url = self.urls[key]
        return "SQLite data/journal.db in its folder" if url is None else _safe(url)


def check_url(url: str) -> str:
    """Accept ``sqlite:///PATH`` and ``postgresql://…`` URLs; return the URL unchanged.

    Raises:
        JournalError: any other scheme, or a SQLite URL without a path.
    """
    if url.startswith(_POSTGRES):
        return url
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path or path == ":memory:" or path.endswith("/"):
            raise JournalError(
                f"{url!r} names no file; give one like sqlite:///demo/journal.db (the demo "
                "derives one file per gateway from it)"
            )
        return url
    raise JournalError(
        f"unsupported journal URL {_safe(url)!r}; use sqlite:///PATH or "
        "postgresql://USER@HOST:PORT/DB"
    )


@asynccontextmanager
async def demo_journals(url: str | None, *, keep: bool, echo: Echo) -> AsyncIterator[DemoJournals]:
    """Create the two gateways' journals for ``url``; remove them afterwards unless ``keep``.

    Raises:
        JournalUnavailable: the PostgreSQL server cannot be reached.
        JournalError: an unsupported URL, psycopg missing, or a journal cannot be created.
    """
    if url is None:
        yield DemoJournals(urls=dict.fromkeys(GATEWAYS))
        return
    check_url(url)
    suffix = secrets.token_hex(4)
    if url.startswith("sqlite:///"):
        journals = _sqlite_journals(url, suffix)
        remove = _remove_files
    else:
        journals = await _create_databases(url, suffix)
        remove = _drop_databases
    try:
        yield journals
    finally:
        if keep:
            _say_kept(journals, url, echo)
        else:
            await remove(journals, url, echo)


# --------------------------------------------------------------------------- SQLite


def _sqlite_journals(url: str, suffix: str) -> DemoJournals:
    """Derived file names beside the given path; nothing is created until a gateway starts."""
    given = Path(url.removeprefix("sqlite:///")).expanduser().absolute()
    paths = {
        key: given.with_name(f"{given.stem}_demo_{key}_{suffix}{given.suffix}") for key in GATEWAYS
    }
    return DemoJournals(
        urls={key: f"sqlite:///{path}" for key, path in paths.items()},
        created=[str(path) for path in paths.values()],
    )


async def _remove_files(journals: DemoJournals, url: str, echo: Echo) -> None:
    removed = []
    for name in journals.created:
        # SQLite in WAL mode leaves its companion files while a connection was open;
        # the journal's cross-process write lock file stays too.
        companions = (Path(f"{name}-wal"), Path(f"{name}-shm"), write_lock.lock_path(Path(name)))
        for path in (Path(name), *companions):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                echo(f"  warning: could not remove {path}: {exc.strerror}; remove it by hand")
        removed.append(name)
    echo(f"  demo journals removed: {', '.join(removed)}")


# --------------------------------------------------------------------------- PostgreSQL


def _safe(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _parsed(url: str) -> Any:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError as exc:
        raise JournalError(f"cannot read the journal URL {_safe(url)!r}: {exc}") from exc


def _database_url(url: str, database: str) -> str:
    """``url`` pointing at another database on the same server, in the scheme it was given."""
    rendered: str = _parsed(url).set(database=database).render_as_string(hide_password=False)
    return rendered


def _libpq_url(url: str) -> str:
    """The URL as psycopg reads it (``postgresql://``, no SQLAlchemy driver suffix)."""
    rendered: str = _parsed(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return rendered


async def _admin(url: str) -> Any:
    """An autocommit connection to the database the URL names (CREATE DATABASE needs one).

    Raises:
        JournalError: psycopg is not installed.
        JournalUnavailable: the server refused or could not be reached.
    """
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the dev set-up installs the extra
        raise JournalError(
            "PostgreSQL journals need psycopg: pip install 'ikz-gateway[postgres]'"
        ) from exc
    try:
        return await psycopg.AsyncConnection.connect(
            _libpq_url(url), autocommit=True, connect_timeout=5
        )
    except psycopg.Error as exc:
        raise JournalUnavailable(
            f"cannot connect to PostgreSQL at {_safe(url)} to create the demo's journals: "
            f"{_first_line(exc)}"
        ) from exc


async def _create_databases(url: str, suffix: str) -> DemoJournals:
    """Two fresh databases on the server of ``url``; none is left if the second fails."""
    import psycopg
    from psycopg import sql

    parsed = _parsed(url)
    base = re.sub(r"[^a-z0-9_]", "_", (parsed.database or parsed.username or "ikz").lower())
    names = {key: f"{base[:_MAX_BASE]}_demo_{key}_{suffix}" for key in GATEWAYS}
    journals = DemoJournals(urls={})
    async with await _admin(url) as conn:
        for key, name in names.items():
            try:
                await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.Error as exc:
                for created in journals.created:
                    await conn.execute(_drop(created))
                raise JournalError(
                    f"cannot create the demo database {name} on {_safe(url)}: "
                    f"{_first_line(exc)} (the role needs the CREATEDB privilege)"
                ) from exc
            journals.created.append(name)
            journals.urls[key] = _database_url(url, name)
    return journals


def _drop(name: str) -> Any:
    from psycopg import sql

    # FORCE ends connections a gateway may still hold in its pool (PostgreSQL 13+).
    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))


async def _drop_databases(journals: DemoJournals, url: str, echo: Echo) -> None:
    """Drop what the demo created; a failure is reported, never raised over the result."""
    import psycopg

    try:
        async with await _admin(url) as conn:
            for name in journals.created:
                await conn.execute(_drop(name))
    except (psycopg.Error, JournalError) as exc:
        echo(
            f"  warning: could not drop the demo databases {', '.join(journals.created)}: "
            f"{_first_line(exc)}; drop them by hand (DROP DATABASE …)"
        )
        return
    echo(f"  demo databases dropped: {', '.join(journals.created)}")


def _say_kept(journals: DemoJournals, url: str, echo: Echo) -> None:
    if url.startswith("sqlite:///"):
        echo(f"  demo journals kept: {', '.join(journals.created)}")
        return
    parsed = _parsed(url)
    echo(
        f"  demo databases kept on {parsed.host or 'localhost'}:{parsed.port or 5432}: "
        f"{', '.join(journals.created)} (the gateway.toml files use them; remove them with "
        "DROP DATABASE)"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
