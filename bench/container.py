"""Reading a large container: peak memory and throughput of ``read_container``.

A container of 200 documents with 1 GiB of random content in total (``--quick``:
20 documents, 64 MiB) and a 3.1.0 0401 message referencing them is written into
a temporary directory with ``ContainerWriter``. Every document is streamed from a
random source in 1 MiB chunks, so none is ever whole in memory. The documents end
in ``.pdf``, so they are stored, not deflated. For comparison the same amount of
random content is written once with bare ``zipfile``.

Then fresh subprocesses read the container, bare and gateway alternating:

* gateway: ``container.read_container(path)`` (central-directory checks, message
  validation, SHA-256 of every entry under the size limits);
* bare: ``zipfile.ZipFile`` and every entry streamed through SHA-256 in 1 MiB
  chunks, nothing else.

Each child reports the time of the read itself (after its imports; the gateway
child compiles its schema beforehand, as a running gateway has), its peak RSS and
the digest of every entry. The parent checks the digests against what the writer
recorded and fails if any differs. The temporary directory is always removed.

Peak RSS is ``VmHWM`` from ``/proc/self/status``: on Linux ``ru_maxrss`` of a
freshly started child already includes the parent's peak, because the kernel
carries the high-water mark of the old address space across exec.

Run a child on its own: ``python -m bench.container --child gateway|bare PATH``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only the standard library at module level: the bare child imports this module and
# must not carry lxml, pydantic or the gateway in its memory.
if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

VERSION = "3.1.0"
MIB = 1024 * 1024
#: Peak RSS the gateway child must stay under, in MiB (an absolute ceiling, not a ratio).
RSS_CEILING_MIB = 150
_CHUNK = MIB
_ROOT = Path(__file__).resolve().parent.parent

#: Reads a container: the SHA-256 of every entry by name, and the entries' total size.
Reader = Callable[[Path], tuple[dict[str, str], int]]


def run(quick: bool) -> Iterator[dict[str, Any]]:
    """Generate the container, read it in child processes, report memory and speed."""
    total, count, rounds = (64 * MIB, 20, 2) if quick else (1024 * MIB, 200, 3)
    with tempfile.TemporaryDirectory(prefix="ikz-bench-container-") as tmp:
        results = _measure(Path(tmp), total, count, rounds)
    yield from results


def _measure(tmp: Path, total: int, count: int, rounds: int) -> list[dict[str, Any]]:
    """Write the containers into ``tmp``, read in ``rounds`` pairs of children; the results.

    Raises:
        RuntimeError: a child failed or reported a digest other than the one written.
    """
    # Imported here, not at module level: see the note on the imports.
    from bench import corpus

    dokumente = corpus.dokumente(count)
    message = corpus.abgabe(VERSION, [corpus.akte(dokumente)])
    sizes = [total // count + (1 if i < total % count else 0) for i in range(count)]
    documents = list(zip(corpus.dateinamen(dokumente), sizes, strict=True))

    start = time.perf_counter()
    _write_bare(tmp / "bare.zip", message, documents)
    bare_write = time.perf_counter() - start
    (tmp / "bare.zip").unlink()
    start = time.perf_counter()
    path, written = _write_gateway(tmp, message, documents)
    gateway_write = time.perf_counter() - start

    reads: dict[str, list[dict[str, Any]]] = {"bare": [], "gateway": []}
    for _ in range(rounds):
        for side, outcomes in reads.items():
            outcome = _spawn(side, path)
            if outcome["sha256"] != written:
                wrong = sorted(
                    name
                    for name in written.keys() | outcome["sha256"].keys()
                    if written.get(name) != outcome["sha256"].get(name)
                )
                raise RuntimeError(
                    f"the {side} reader reports other SHA-256 digests than were written for "
                    f"{len(wrong)} entries, e.g. {wrong[:3]}"
                )
            outcomes.append(outcome)

    mb = sum(sizes) / 1e6
    size_note = f"{count} stored documents, {sum(sizes) / MIB:.0f} MiB in total"
    rss = {
        side: max(o["peak_rss_kib"] for o in outcomes) / 1024 for side, outcomes in reads.items()
    }
    speed = {
        side: statistics.median(o["bytes"] / 1e6 / o["elapsed"] for o in outcomes)
        for side, outcomes in reads.items()
    }
    return [
        {
            "name": "container_write_throughput",
            "value": round(mb / gateway_write, 1),
            "unit": "MB/s",
            "baseline": round(mb / bare_write, 1),
            "ratio": round(bare_write / gateway_write, 3),
            "target": None,
            "seconds": round(gateway_write, 2),
            "note": (
                f"{size_note}; one write each, content from os.urandom on both sides; "
                "gateway: ContainerWriter (validates the message, SHA-256, fsync, rename); "
                "baseline: bare zipfile + fsync; informational"
            ),
        },
        {
            "name": "container_read_peak_rss",
            "value": round(rss["gateway"], 1),
            "unit": "MiB",
            "baseline": round(rss["bare"], 1),
            "ratio": round(rss["gateway"] / rss["bare"], 3),
            "target": RSS_CEILING_MIB,
            "rounds": rounds,
            "note": (
                f"{size_note}; target is an absolute ceiling: value <= {RSS_CEILING_MIB} MiB; "
                "highest VmHWM of the child processes (interpreter and imports included); "
                "baseline: bare zipfile + SHA-256"
            ),
        },
        {
            "name": "container_read_throughput",
            "value": round(speed["gateway"], 1),
            "unit": "MB/s",
            "baseline": round(speed["bare"], 1),
            "ratio": round(speed["gateway"] / speed["bare"], 3),
            "target": None,
            "rounds": rounds,
            "note": (
                f"{size_note}; median over child processes of entry bytes / read time; the "
                "container was just written, so it is read from the page cache"
            ),
        },
    ]


# --------------------------------------------------------------------------- writing


class _RandomBytes(io.RawIOBase):
    """A readable stream of ``size`` random bytes, produced as they are read."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        with memoryview(buffer) as view:
            count = min(len(view), self._left)
            view[:count] = os.urandom(count)
        self._left -= count
        return count


def _random_stream(size: int) -> io.BufferedReader:
    return io.BufferedReader(_RandomBytes(size), buffer_size=_CHUNK)


def _write_gateway(
    directory: Path, message: bytes, documents: list[tuple[str, int]]
) -> tuple[Path, dict[str, str]]:
    """Write the container with ``ContainerWriter``; its path and every entry's SHA-256."""
    from adapters.xdomea import container

    with container.ContainerWriter(directory, message) as writer:
        for name, size in documents:
            with _random_stream(size) as source:
                writer.add_document(name, source)
    return writer.directory / writer.file_name, {e.name: e.sha256 for e in writer.entries}


def _write_bare(path: Path, message: bytes, documents: list[tuple[str, int]]) -> None:
    """Write the same entries with bare ``zipfile``: message deflated, documents stored."""
    with path.open("wb") as file:
        with zipfile.ZipFile(file, "w", allowZip64=True) as archive:
            archive.writestr("message.xml", message, compress_type=zipfile.ZIP_DEFLATED)
            for name, size in documents:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                with (
                    archive.open(info, "w", force_zip64=True) as target,
                    _random_stream(size) as source,
                ):
                    while chunk := source.read(_CHUNK):
                        target.write(chunk)
        file.flush()
        os.fsync(file.fileno())


# --------------------------------------------------------------------------- reading


def _spawn(side: str, path: Path) -> dict[str, Any]:
    """Run one reader child; its report.

    Raises:
        RuntimeError: the child failed.
    """
    done = subprocess.run(
        [sys.executable, "-m", "bench.container", "--child", side, str(path)],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {side} reader failed ({done.returncode}):\n{done.stderr}")
    outcome: dict[str, Any] = json.loads(done.stdout)
    return outcome


def _gateway_reader() -> Reader:
    """``read_container`` as a reader, imported and with its schema compiled.

    A running gateway has both done at start-up, so neither belongs to the read time.
    """
    from adapters.xdomea import container
    from schemas.loader import default_loader

    default_loader().schema(VERSION, "Abgabe")

    def read(path: Path) -> tuple[dict[str, str], int]:
        report = container.read_container(path)
        if not report.valid:
            raise RuntimeError(f"the gateway finds the container invalid: {report.all_findings}")
        return {e.name: e.sha256 for e in report.entries}, sum(e.size for e in report.entries)

    return read


def _read_bare(path: Path) -> tuple[dict[str, str], int]:
    """Every entry through SHA-256 in 1 MiB chunks; the digests and total size."""
    digests: dict[str, str] = {}
    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            digest = hashlib.sha256()
            with archive.open(info) as stream:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    total += len(chunk)
            digests[info.filename] = digest.hexdigest()
    return digests, total


def _peak_rss_kib() -> int:
    """This process's own peak RSS in KiB (``VmHWM``; ``ru_maxrss`` where there is no /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child(argv: list[str]) -> int:
    """Read one container as ``--child gateway|bare PATH`` says; print the report as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.container")
    parser.add_argument("--child", choices=["gateway", "bare"], required=True)
    parser.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    read = _gateway_reader() if args.child == "gateway" else _read_bare
    start = time.perf_counter()
    digests, size = read(args.path)
    elapsed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "side": args.child,
                "elapsed": elapsed,
                "bytes": size,
                "peak_rss_kib": _peak_rss_kib(),
                "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "sha256": digests,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
