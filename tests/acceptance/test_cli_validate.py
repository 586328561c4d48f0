"""The validate and inspect commands as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.xdomea.container import write_container
from tests.conftest import SHARED_SAMPLES
from tests.zipcraft import SAMPLE_0503, SAMPLE_DATEINAME

SAMPLE = SHARED_SAMPLES / SAMPLE_0503
PDF = (SHARED_SAMPLES / "pdfa" / "test_pdf_a1-b.pdf").read_bytes()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def container(tmp_path: Path) -> Path:
    """A valid 0503 container with one PDF."""
    path, _ = write_container(tmp_path, SAMPLE.read_bytes(), {SAMPLE_DATEINAME: PDF})
    return path


def test_validate_exits_0_for_valid_messages_and_containers(container: Path) -> None:
    """Valid XML and a valid container: exit code 0 and one VALID line each."""
    result = run("validate", str(SAMPLE), str(container))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("VALID ") == 2


def test_validate_exits_1_for_a_schema_invalid_message_and_names_the_line(tmp_path: Path) -> None:
    """An invalid message: exit 1, the error with its line and element path."""
    bad = tmp_path / "bad.xml"
    bad.write_bytes(SAMPLE.read_bytes().replace(b"<code>0503</code>", b"<code>9999</code>"))

    result = run("validate", str(bad))

    assert result.returncode == 1
    assert "INVALID" in result.stdout
    assert "line 11" in result.stdout and "Nachrichtentyp" in result.stdout


def test_validate_exits_2_for_unusable_input_without_a_traceback(tmp_path: Path) -> None:
    """Unusable input: exit 2 and a one-line reason, never a stack trace."""
    junk = tmp_path / "junk.xml"
    junk.write_text("this is not xml")

    result = run("validate", str(junk))

    assert result.returncode == 2
    assert "UNUSABLE" in result.stdout and "not well-formed" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_validate_reports_the_worst_outcome_over_several_paths(tmp_path: Path) -> None:
    """With valid, invalid and unusable paths together the exit code is 2."""
    junk = tmp_path / "junk.xml"
    junk.write_text("<")

    result = run("validate", str(SAMPLE), str(junk))

    assert result.returncode == 2


def test_validate_json_lists_status_findings_and_entry_hashes(container: Path) -> None:
    """--json gives machines status, version, type, ProzessID and per-entry SHA-256."""
    result = run("validate", "--json", str(container))

    document = json.loads(result.stdout)
    (entry,) = document["results"]
    assert document["exit_code"] == 0
    assert entry["status"] == "valid"
    assert entry["version"] == "3.0.0"
    assert entry["message_type"] == "Aussonderung.Aussonderung.0503"
    pdf = next(e for e in entry["entries"] if e["name"] == SAMPLE_DATEINAME)
    assert len(pdf["sha256"]) == 64


def test_validate_json_reports_an_unsupported_version_as_unusable(tmp_path: Path) -> None:
    """A 4.0.0 message is unusable with an error naming the installed versions."""
    future = tmp_path / "future.xml"
    future.write_bytes(SAMPLE.read_bytes().replace(b"schema:3.0.0", b"schema:4.0.0"))

    result = run("validate", "--json", str(future))

    document = json.loads(result.stdout)
    assert result.returncode == 2
    assert document["results"][0]["error"] == {
        "kind": "unsupported-version",
        "message": "unsupported xdomea version 4.0.0; installed: 2.3.0, 2.4.0, 3.0.0, 3.1.0",
    }


def test_inspect_prints_kopf_and_tree_with_document_hashes(container: Path) -> None:
    """inspect shows ProzessID, parties, the Dokument and its document's SHA-256."""
    import hashlib

    result = run("inspect", str(container))

    assert result.returncode == 0, result.stderr
    assert "ProzessID             242f44e8-bebf-4503-a086-db252c6a4277" in result.stdout
    assert "Dokument d9fc876a-3838-4e15-9203-15c703afe730" in result.stdout
    assert hashlib.sha256(PDF).hexdigest() in result.stdout


def test_schemas_list_shows_every_version_verified() -> None:
    """With IKZ_SCHEMA_DIR on the reference schemas, all four versions are verified."""
    result = run("schemas", "list")

    assert result.returncode == 0
    for version in ("2.3.0", "2.4.0", "3.0.0", "3.1.0"):
        assert f"{version}   verified" in result.stdout
