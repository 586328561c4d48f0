"""The demo as a new user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adapters.xdomea.container import write_container
from tests.conftest import SHARED_SAMPLES
from tests.zipcraft import MESSAGE_NAME, SAMPLE_DATEINAME, Entry, write_zip


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("version", ["2.3.0", "3.1.0"])
def test_demo_passes_and_proves_every_document_and_receipt(version: str, tmp_path: Path) -> None:
    """The default demo exits 0 and reports each document's hash match and each receipt."""
    result = run("demo", "--workdir", str(tmp_path), "--xdomea-version", version)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout
    assert result.stdout.count("= sent") == 3
    assert "0402 reports every object imported" in result.stdout
    filed = sorted(p.name for p in (tmp_path / "kommune-b" / "dms").iterdir())
    assert len(filed) == 3


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
