"""``ikz-gateway db purge`` as an operator runs it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from gateway.blobs import BlobStore
from gateway.journal.store import Journal
from tests.journal_support import journal_record

CONFIG = """
[node]
id = "kommune-b"
behoerdenkennung = "060:4711"

[storage]
journal = "sqlite:///data/journal.db"
blobs = "data/blobs"

[destinations.out]
type = "filesystem"
directory = "out"

[[routes]]
empfaenger = "060:4711"
destination = "out"
"""

#: Less than a second: the test waits that long after the delivery.
OLDER_THAN_DAYS = "0.00001"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=120
    )


def delivered_message(folder: Path, prozess_id: str, *, as_file: bool = False) -> None:
    """Journal one received 0401 and record its delivery, as ``serve`` would have.

    ``as_file``: its content in the blob store, not in the journal.
    """

    async def work() -> None:
        journal = Journal.from_url(f"sqlite:///{folder / 'data' / 'journal.db'}")
        try:
            await journal.upgrade()
            data = f"<abgabe prozess='{prozess_id}'/>".encode()
            message = journal_record(data, prozess_id=prozess_id)
            if as_file:
                blobs = BlobStore(folder / "data" / "blobs")
                try:
                    await blobs.store(data, message.blob_sha256)
                finally:
                    blobs.close()
                await journal.accept(message, ["out"])
            else:
                await journal.accept(message, ["out"], content=data)
            for claim in await journal.claim("w1", limit=10, lease=timedelta(seconds=30)):
                await journal.complete(claim, "w1")
        finally:
            await journal.close()

    asyncio.run(work())


def configured(tmp_path: Path) -> Path:
    """The configuration file of Kommune B in ``tmp_path``."""
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG)
    return config


def test_a_dry_run_lists_the_finished_process_and_deletes_nothing(tmp_path: Path) -> None:
    """The operator sees what would go; the journal keeps it."""
    config = configured(tmp_path)
    delivered_message(tmp_path, "P-DRY")
    time.sleep(1)

    result = run(
        "db", "purge", "--config", str(config), "--older-than", OLDER_THAN_DAYS, "--dry-run"
    )
    status = run("status", "--config", str(config))

    assert result.returncode == 0, result.stderr
    assert "1 process(es)" in result.stdout and "p-dry" in result.stdout
    assert "Abgabe.Abgabe.0401" in status.stdout


def test_purge_forgets_the_finished_process_and_says_what_went(tmp_path: Path) -> None:
    """Messages and their history are gone; the JSON report names the process."""
    config = configured(tmp_path)
    delivered_message(tmp_path, "P-OLD")
    time.sleep(1)

    result = run("db", "purge", "--config", str(config), "--older-than", OLDER_THAN_DAYS, "--json")
    status = run("status", "--config", str(config), "--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [p["prozess_id"] for p in report["purged"]] == ["P-OLD"]
    assert report["messages"] == 1 and report["content_bytes"] > 0
    assert json.loads(status.stdout) == []


def test_purge_without_an_age_is_refused_with_usage(tmp_path: Path) -> None:
    """No default retention: forgetting needs an explicit age."""
    config = configured(tmp_path)

    result = run("db", "purge", "--config", str(config))

    assert result.returncode == 2
    assert "--older-than" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def content_files(folder: Path) -> list[Path]:
    """The content files in the blob store of the gateway in ``folder``."""
    return [p for p in (folder / "data" / "blobs" / "sha256").rglob("*") if p.is_file()]


def test_blobs_prune_removes_the_files_of_forgotten_processes(tmp_path: Path) -> None:
    """After db purge, the content file is left; blobs prune removes it."""
    config = configured(tmp_path)
    delivered_message(tmp_path, "P-FILE", as_file=True)
    time.sleep(1)
    assert len(content_files(tmp_path)) == 1

    purged = run("db", "purge", "--config", str(config), "--older-than", OLDER_THAN_DAYS)
    pruned = run("blobs", "prune", "--config", str(config))

    assert purged.returncode == 0, purged.stderr
    assert "'ikz-gateway blobs prune' removes them" in purged.stdout
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 1 of 1 content file(s)" in pruned.stdout
    assert content_files(tmp_path) == []


def test_blobs_prune_refuses_while_the_store_is_open_and_exits_2(tmp_path: Path) -> None:
    """A gateway holding the store open: the operator is told to stop it, nothing goes."""
    config = configured(tmp_path)
    running = BlobStore(tmp_path / "data" / "blobs")
    try:
        result = run("blobs", "prune", "--config", str(config))
    finally:
        running.close()

    assert result.returncode == 2
    assert "stop every 'serve' using it" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
