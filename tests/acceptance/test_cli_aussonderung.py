"""Aussonderung as an operator drives it: the demo, process show, and start's refusals."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.blobs import BlobStore
from tests.aussonderung_support import akte
from tests.delivery_support import outbound
from tests.dms_support import container, filesystem_destination


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("stages", ["2", "4"])
def test_the_aussonderung_demo_passes_over_webdav(stages: str, tmp_path: Path) -> None:
    """The demo hands Akten to the x-man simulator over WebDAV and exits 0 with every check passed."""
    result = run(
        "demo", "--scenario", "aussonderung", "--stages", stages, "--workdir", str(tmp_path)
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout
    assert "[FAIL]" not in result.stdout
    assert "bit-identical to the DMS" in result.stdout
    assert "WebDAV http://127.0.0.1:" in result.stdout


def test_process_show_tells_the_aussonderung_with_valuations_results_and_dms_actions(
    tmp_path: Path,
) -> None:
    """After the demo, process show prints the state, each Bewertung, the 0506 results and the DMS actions."""
    demo = run("demo", "--scenario", "aussonderung", "--workdir", str(tmp_path))
    assert demo.returncode == 0, demo.stdout + demo.stderr
    found = re.search(r"process ([0-9a-f-]{36}) \(0501\)", demo.stdout)
    assert found is not None, demo.stdout
    config = tmp_path / "kommune" / "gateway.toml"

    result = run("process", "show", found.group(1), "--config", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"process {found.group(1)}: completed" in result.stdout
    assert "archive archiv (4-stage)" in result.stdout
    assert "Bewertung A" in result.stdout and "Bewertung V" in result.stdout
    assert ": archived Archivkennung SIM-" in result.stdout
    assert "archiviert, fachdatum (archiv=SIM-" in result.stdout
    assert "vernichten, disposal-date (offltscheduled=" in result.stdout
    assert result.stdout.count("sha256 ") == 7


def test_start_with_an_unknown_archive_exits_2_and_names_the_configured_ones(
    tmp_path: Path,
) -> None:
    """aussonderung start for an archive not in gateway.toml says which archives there are."""
    demo = run("demo", "--scenario", "aussonderung", "--stages", "2", "--workdir", str(tmp_path))
    assert demo.returncode == 0, demo.stdout + demo.stderr
    config = tmp_path / "kommune" / "gateway.toml"

    result = run(
        "aussonderung",
        "start",
        "--akten",
        "COO.1.2.3",
        "--archive",
        "stadtarchiv",
        "--config",
        str(config),
    )

    assert result.returncode == 2
    assert "no archive 'stadtarchiv' is configured (archives: archiv)" in result.stderr
    assert "Traceback" not in result.stderr


CONFIG = """
[node]
id = "kommune-a"
behoerdenkennung = "060:0815"

[storage]
journal = "sqlite:///journal.db"
blobs = "blobs"

[dms]
backend = "filesystem"
directory = "dms"

[archives.landesarchiv]
behoerdenkennung = "LA:LATh"
stages = {stages}
folder = {{ type = "local", path = "transfer" }}

[destinations.archiv]
type = "archive"
archive = "landesarchiv"

[destinations.aussonderung]
type = "aussonderung"

[[routes]]
empfaenger = "LA:LATh"
destination = "archiv"

[[routes]]
empfaenger = "060:0815"
nachrichtentyp = ["0502", "0504", "0506", "0507"]
destination = "aussonderung"
"""


async def _seed_filesystem_dms(tmp_path: Path, pdf: bytes) -> str:
    """An Akte filed into the filesystem DMS at ``tmp_path/dms``; its address."""

    spec = akte("Akte")
    behaelter = container(tmp_path / "seed", [spec], pdf)
    destination = filesystem_destination(tmp_path / "dms")
    blobs = BlobStore(tmp_path / "seed-blobs")
    try:
        item = await outbound(blobs, behaelter.data, prozess_id=behaelter.prozess_id)
        ergebnis = await destination.import_message(item)
    finally:
        blobs.close()
    return ergebnis.adressen[spec.uuid]


@pytest.mark.parametrize(("stages", "code"), [("4", "0501"), ("2", "0503")])
async def test_start_journals_the_offer_or_the_handover_for_serve_to_deliver(
    stages: str, code: str, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """aussonderung start exports the Akte, journals the 0501 (or 0503) and says how to follow it."""
    adresse = await _seed_filesystem_dms(tmp_path, pdf_bytes)
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG.format(stages=stages), encoding="utf-8")

    result = run(
        "aussonderung",
        "start",
        "--akten",
        adresse,
        "--archive",
        "landesarchiv",
        "--config",
        str(config),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"Aussonderung ([0-9a-f-]{36}): 1 object\(s\)", result.stdout)
    assert found is not None, result.stdout
    assert f"({code})" in result.stdout
    shown = run("process", "show", found.group(1), "--config", str(config))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"process {found.group(1)}: accepted" in shown.stdout
    assert f"(DMS {adresse})  Bewertung -" in shown.stdout
