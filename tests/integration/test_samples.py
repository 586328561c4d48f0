"""The official sample messages in ../shared/samples validate against their version's XSD."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.xdomea.validation import check_message
from tests.conftest import SHARED_SAMPLES

SAMPLES = sorted(SHARED_SAMPLES.glob("xdomea-*/*.xml"))


def test_samples_are_present() -> None:
    """The shared reference data holds sample messages, so the parametrised test is not empty."""
    assert SAMPLES


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sample_is_valid(path: Path) -> None:
    """Each sample passes schema validation for the version its namespace names."""
    checked = check_message(path.read_bytes(), where=str(path))

    assert checked.valid, [f.message for f in checked.findings]
    assert f"xdomea-{checked.detected.version}" == path.parent.name
