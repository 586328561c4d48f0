"""Run a benchmark: ``python -m bench NAME [--quick]`` (from the project root).

Each benchmark prints JSON lines ``{"name", "value", "unit", "baseline", "ratio",
"target"}`` where ``baseline`` is an anchor measured in the same run and
``ratio = value / baseline``. ``--quick`` finishes in under a minute.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

BENCHMARKS = {
    "validate": "bench.validate",
    "container": "bench.container",
    "runtime": "bench.runtime",
    "postgres": "bench.postgres",
    "dms": "bench.dms",
    "xta": "bench.xta",
}


def main() -> int:
    """Parse arguments, run the named benchmarks, print their results."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="+", choices=[*BENCHMARKS, "all"])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    args = parser.parse_args()
    shared = Path(__file__).resolve().parent.parent.parent / "shared" / "xdomea"
    if "IKZ_SCHEMA_DIR" not in os.environ and shared.is_dir():
        os.environ["IKZ_SCHEMA_DIR"] = str(shared)
    names = list(BENCHMARKS) if "all" in args.names else args.names
    for name in names:
        module = importlib.import_module(BENCHMARKS[name])
        for result in module.run(quick=args.quick):
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
