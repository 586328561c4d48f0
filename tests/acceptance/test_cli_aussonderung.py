"""Aussonderung as an operator drives it: the demo, process show, and start's refusals."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


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
