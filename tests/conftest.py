"""Shared test set-up: schemas come from ../shared/xdomea, never from the network."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from gateway.journal.store import Journal
from schemas.loader import reset_default_loader

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SHARED_XDOMEA = SHARED / "xdomea"
SHARED_SAMPLES = SHARED / "samples"
VERSIONS = ("2.3.0", "2.4.0", "3.0.0", "3.1.0")

if not SHARED_XDOMEA.is_dir():  # pragma: no cover - CI always has ../shared
    raise RuntimeError(f"the tests need the reference schemas in {SHARED_XDOMEA}")

os.environ["IKZ_SCHEMA_DIR"] = str(SHARED_XDOMEA)

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    """Refuse any connection that leaves the machine."""
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and host not in {"127.0.0.1", "::1", "localhost"}:
        raise RuntimeError(f"tests may only connect to loopback, not {address!r}")
    return _real_connect(self, address)  # type: ignore[arg-type]


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _fresh_schema_loader() -> Iterator[None]:
    """Each test sees the schema root its environment names."""
    reset_default_loader()
    yield
    reset_default_loader()


@pytest.fixture
def shared_samples() -> Path:
    """The official sample messages."""
    return SHARED_SAMPLES


@pytest.fixture
def pdf_bytes() -> bytes:
    """A real PDF/A file to use as a primary document."""
    return (SHARED_SAMPLES / "pdfa" / "test_pdf_a1-b.pdf").read_bytes()


# --------------------------------------------------------------------------- journals

#: Where the PostgreSQL tests create (and drop) their databases; trust auth on loopback.
POSTGRES_ADMIN_URL = os.environ.get(
    "IKZ_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
_TEMPLATE = f"ikz_test_template_{uuid.uuid4().hex[:8]}"


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover - CI has the server
        pytest.fail(
            f"PostgreSQL is required for the journal tests and is not reachable at "
            f"{POSTGRES_ADMIN_URL} ({exc}); start it or set IKZ_TEST_POSTGRES_URL",
            pytrace=False,
        )


def _database_url(name: str) -> str:
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated template database for this test run, dropped at the end."""
    with _admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_TEMPLATE)))
    journal = Journal.from_url(_database_url(_TEMPLATE))

    async def upgrade() -> None:
        await journal.upgrade()
        await journal.close()

    asyncio.run(upgrade())
    yield _TEMPLATE
    with _admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(_TEMPLATE))
        )


@contextmanager
def _database(prefix: str, template: str | None) -> Iterator[str]:
    """A new database (a clone of ``template``, or empty), dropped when the block ends."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    if template is None:
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    else:
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with _admin() as conn:
        conn.execute(create)
    try:
        yield _database_url(name)
    finally:
        with _admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test (cloned from the template)."""
    with _database("ikz_test", postgres_template) as url:
        yield url


@pytest.fixture(scope="module")
def module_postgres_url(postgres_template: str) -> Iterator[str]:
    """A fresh, migrated database shared by one module's tests (a scenario run once)."""
    with _database("ikz_test_module", postgres_template) as url:
        yield url


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database without any table: not cloned from the template."""
    with _database("ikz_test_empty", None) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty journal on each backend; no backend may skip a contract test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def journal(journal_url: str) -> AsyncIterator[Journal]:
    """A migrated journal on each backend."""
    store = Journal.from_url(journal_url)
    await store.upgrade()
    yield store
    await store.close()
