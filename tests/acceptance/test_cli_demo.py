"""The demo as a new user runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from adapters.xdomea.container import write_container
from tests.conftest import POSTGRES_ADMIN_URL, SHARED_SAMPLES
from tests.zipcraft import MESSAGE_NAME, SAMPLE_DATEINAME, Entry, write_zip


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("version", ["2.3.0", "3.1.0"])
def test_demo_moves_an_akte_from_a_dms_to_b_dms_over_mutual_tls(
    version: str, tmp_path: Path
) -> None:
    """The default demo: DMS to DMS over mTLS, timeline, identical documents, Akte marked."""
    result = run("demo", "--workdir", str(tmp_path), "--xdomea-version", version)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "scenario abgabe (--dms sims)" in result.stdout and "PASSED" in result.stdout
    assert result.stdout.count("= sent") == 3
    receipts = "0401, 0403, 0402" if version == "3.1.0" else "0401, 0402"
    assert f"[ok  ] {receipts} in A's timeline" in result.stdout
    assert "[ok  ] A's process is completed" in result.stdout
    assert "[ok  ] B's process records every document filed with A's SHA-256" in result.stdout
    assert "[ok  ] Abgabevermerk on COO." in result.stdout
    assert (tmp_path / "certs" / "ca.crt").is_file()
    config = (tmp_path / "kommune-a" / "gateway.toml").read_text()
    assert "[http.tls]" in config and 'on_completed = "mark-abgegeben"' in config


def test_demo_with_dms_fs_sends_a_container_into_b_transfer_folder(tmp_path: Path) -> None:
    """--dms fs: A sends a built container with send; B files every document from its folder."""
    result = run("demo", "--dms", "fs", "--workdir", str(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout
    assert result.stdout.count("= sent") == 3
    assert "0402 reports every object imported" in result.stdout
    filed = sorted(p.name for p in (tmp_path / "kommune-b" / "dms").iterdir())
    assert len(filed) == 3


def test_demo_refuses_a_container_with_dms_sims_and_exits_2(tmp_path: Path) -> None:
    """--container with --dms sims is a usage error: a given container is sent with send."""
    container = write_zip(tmp_path / "c.zip", [Entry(MESSAGE_NAME, b"<x/>")])

    result = run("demo", "--container", str(container), "--dms", "sims")

    assert result.returncode == 2
    assert "--dms fs" in result.stdout + result.stderr


def test_demo_with_a_given_container_uses_its_parties(tmp_path: Path) -> None:
    """With --container the demo sends that container and checks its documents."""
    sample = (
        SHARED_SAMPLES / "xdomea-3.0.0" / "xx_Aussonderung.Aussonderung.0503.xml"
    ).read_bytes()
    pdf = (SHARED_SAMPLES / "pdfa" / "test_pdf_a2-b.pdf").read_bytes()
    container, _ = write_container(tmp_path / "in", sample, {SAMPLE_DATEINAME: pdf})

    result = run("demo", "--container", str(container), "--workdir", str(tmp_path / "work"))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "LATh" in result.stdout
    assert f"{SAMPLE_DATEINAME}  sha256" in result.stdout
    assert "0507" in result.stdout and "0506 reports every object imported" in result.stdout


def test_demo_refuses_an_invalid_container_and_exits_1(tmp_path: Path) -> None:
    """A container with a missing document fails the demo's check, with exit code 1."""
    sample = (
        SHARED_SAMPLES / "xdomea-3.0.0" / "xx_Aussonderung.Aussonderung.0503.xml"
    ).read_bytes()
    container = write_zip(tmp_path / "c.zip", [Entry(MESSAGE_NAME, sample)])

    result = run("demo", "--container", str(container))

    assert result.returncode == 1
    assert "FAIL" in result.stdout and "is missing from the container" in result.stdout


def _demo_databases(base: str) -> set[str]:
    """Databases on the test server whose names the demo derives from ``base``."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{base}_demo_%",)
        ).fetchall()
    return {row[0] for row in rows}


def _drop(names: set[str]) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        for name in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _named(output: str, base: str) -> set[str]:
    """The demo databases an output names (other runs on the server make their own)."""
    return set(re.findall(rf"\b{re.escape(base)}_demo_[ab]_[0-9a-f]+\b", output))


def test_demo_on_postgresql_passes_and_drops_its_databases() -> None:
    """With --journal postgresql://… both gateways journal in fresh databases, dropped at the end."""
    base = make_url(POSTGRES_ADMIN_URL).database
    assert base is not None

    result = run("demo", "--journal", POSTGRES_ADMIN_URL)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout
    assert result.stdout.count("journal postgresql://") == 2
    assert "demo databases dropped" in result.stdout
    created = _named(result.stdout, base)
    assert len(created) == 2 and not created & _demo_databases(base)


def test_demo_with_workdir_keeps_its_postgresql_databases(tmp_path: Path) -> None:
    """With --workdir the databases stay, so the written gateway.toml files still work."""
    base = make_url(POSTGRES_ADMIN_URL).database
    assert base is not None
    kept: set[str] = set()
    try:
        result = run("demo", "--journal", POSTGRES_ADMIN_URL, "--workdir", str(tmp_path))
        # Only the databases this run names: other test runs share the server.
        kept = _named(result.stdout, base)

        assert result.returncode == 0, result.stdout + result.stderr
        assert len(kept) == 2 and kept <= _demo_databases(base)
        assert "demo databases kept" in result.stdout
        status = run("status", "--config", str(tmp_path / "kommune-b" / "gateway.toml"))
        assert status.returncode == 0 and "delivered" in status.stdout, status.stderr
    finally:
        _drop(kept)


def test_demo_with_a_sqlite_journal_url_removes_the_derived_files(tmp_path: Path) -> None:
    """With --journal sqlite:///PATH each gateway gets its own file beside PATH, removed at the end."""
    result = run("demo", "--journal", f"sqlite:///{tmp_path / 'journal.db'}")

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(f"journal sqlite:///{tmp_path}/journal_demo_") == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://postgres@127.0.0.1:1/postgres", "cannot connect to PostgreSQL"),
        ("mysql://user:secret@127.0.0.1/db", "unsupported journal URL"),
        ("sqlite:///", "names no file"),
    ],
)
def test_demo_refuses_an_unusable_journal_with_exit_2(url: str, message: str) -> None:
    """An unreachable server or an unsupported URL ends the demo with a clear error and exit 2."""
    result = run("demo", "--journal", url)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "secret" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def sim_demo(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """One run of ``demo --dms sim`` (the WSDL found in ../shared), shared by the tests below."""
    return run("demo", "--dms", "sim", "--workdir", str(tmp_path_factory.mktemp("sim-demo")))


def test_demo_with_the_dms_simulator_passes(sim_demo: subprocess.CompletedProcess[str]) -> None:
    """With --dms sim, B's gateway imports into the dmsin simulator and the demo exits 0."""
    assert sim_demo.returncode == 0, sim_demo.stdout + sim_demo.stderr
    assert "imported the message into its DMS (dmsin over SOAP)" in sim_demo.stdout
    assert "PASSED" in sim_demo.stdout


def test_demo_with_the_dms_simulator_prints_the_objects_in_the_dms(
    sim_demo: subprocess.CompletedProcess[str],
) -> None:
    """The demo lists the Akte, Vorgänge, Dokumente and contents B's DMS holds, with addresses."""
    lines = sim_demo.stdout.splitlines()
    start = lines.index(next(line for line in lines if "objects in B's DMS" in line))
    tree = [line.strip() for line in lines[start + 1 : start + 10]]
    assert [line.split(" ", 1)[0] for line in tree] == [
        "Akte",
        "Vorgang",
        "Dokument",
        "Inhalt",
        "Dokument",
        "Inhalt",
        "Vorgang",
        "Dokument",
        "Inhalt",
    ]
    assert all(line.rsplit("  ", 1)[1].startswith("COO.") for line in tree)


def test_demo_with_the_dms_simulator_proves_every_exported_document(
    sim_demo: subprocess.CompletedProcess[str],
) -> None:
    """Every document exported back from the DMS has the SHA-256 A sent; nothing is created twice."""
    assert sim_demo.stdout.count("= sent") == 3
    assert "[ok  ] the export is a valid 0401 container" in sim_demo.stdout
    assert "[ok  ] replaying the import creates nothing" in sim_demo.stdout


def test_demo_with_the_dms_simulator_and_no_wsdl_exits_2(tmp_path: Path) -> None:
    """Without a findable dmsin WSDL the demo says how to give one and exits 2."""
    result = run("demo", "--dms", "sim", "--dms-wsdl", str(tmp_path / "missing.wsdl"))

    assert result.returncode == 2
    assert "--dms-wsdl PATH or IKZ_DMSIN_WSDL=PATH" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
