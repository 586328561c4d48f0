"""Shared test set-up: schemas come from ../shared/xdomea, never from the network."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

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
