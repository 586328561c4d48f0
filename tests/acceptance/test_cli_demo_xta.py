"""``ikz-gateway demo --scenario xta`` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SHARED


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_xta_demo_files_the_pdf_and_fetches_the_answer(tmp_path: Path) -> None:
    """The XTA scenario exits 0 after the PDF matched in the DMS and the 0630 was fetched."""
    result = run(
        "demo",
        "--scenario",
        "xta",
        "--workdir",
        str(tmp_path),
        "--xta-wsdl",
        str(SHARED / "wsdl" / "xta2" / "XTA.wsdl"),
        "--dms-wsdl",
        str(SHARED / "wsdl" / "dmsin" / "dmsin-eai-1.10.wsdl"),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok  ] the PDF is in the DMS bit-identical" in result.stdout
    assert "[ok  ] it is a schema-valid 0630" in result.stdout
    assert "PASSED" in result.stdout
    assert (tmp_path / "stadt-musterstadt" / "gateway.toml").is_file()


def test_xta_demo_without_the_wsdl_says_how_to_give_it(tmp_path: Path) -> None:
    """A missing XTA.wsdl ends the demo with exit code 2 and names --xta-wsdl."""
    result = run("demo", "--scenario", "xta", "--xta-wsdl", str(tmp_path / "missing.wsdl"))

    assert result.returncode == 2
    assert "--xta-wsdl" in result.stderr


_XTA_CONFIG = """
[node]
id = "stadt-musterstadt"
behoerdenkennung = "060:0815"

[xta]
wsdl = {wsdl}

[[partners]]
id = "bau-fachverfahren"
behoerdenkennung = "060:0815-FV"
token_env = "IKZ_TOKEN_BAU_FV"

[destinations.fv-postfach]
type = "xta-msgbox"
partner = "bau-fachverfahren"

[[routes]]
empfaenger = "060:0815-FV"
destination = "fv-postfach"
"""


def test_config_check_shows_the_xta_service(tmp_path: Path) -> None:
    """config check loads the XTA schemas and lists the service and the message box."""
    path = tmp_path / "gateway.toml"
    path.write_text(_XTA_CONFIG.format(wsdl=json.dumps(str(SHARED / "wsdl/xta2/XTA.wsdl"))))

    result = run("config", "check", str(path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "xta          /xta" in result.stdout
    assert "destination  fv-postfach (xta-msgbox)" in result.stdout


def test_config_check_refuses_a_missing_xta_wsdl(tmp_path: Path) -> None:
    """Without XTA.wsdl the configuration is invalid, and the message says where to point."""
    path = tmp_path / "gateway.toml"
    path.write_text(_XTA_CONFIG.format(wsdl=json.dumps(str(tmp_path / "nowhere.wsdl"))))

    result = run("config", "check", str(path))

    assert result.returncode == 1
    assert "INVALID" in result.stdout
    assert "point xta.wsdl at XTA.wsdl" in result.stdout
