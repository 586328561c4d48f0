"""Compiling schemas from many threads at once in a fresh process, as a just-started gateway does."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

_RACE = textwrap.dedent(
    """
    from concurrent.futures import ThreadPoolExecutor
    from schemas.loader import default_loader

    loader = default_loader()

    def compile_once(_: int) -> str:
        try:
            loader.schema("3.1.0", "Abgabe")
        except Exception as exc:
            return repr(exc)
        return ""

    with ThreadPoolExecutor(16) as pool:
        failures = [f for f in pool.map(compile_once, range(16)) if f]
    print(len(failures), failures[:1])
    """
)


def test_concurrent_first_compilation_in_a_fresh_process_succeeds() -> None:
    """Sixteen threads compiling the same schema for the first time all get a usable schema."""
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", _RACE],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert done.stdout.startswith("0 "), done.stdout
