"""Validation throughput of the gateway's validate path against bare lxml.

The corpus is built with the project's own builders: for each of the four
versions a 0401 Abgabe with one Akte of 10 Vorgänge × 10 Dokumente ("large") and
one with a single Dokument ("small"). Both sides validate exactly these bytes:

* gateway: ``validation.check_message`` (safe parse, detection, XSD validation,
  semantic checks);
* bare: ``etree.fromstring`` with one reused parser of the same safety settings,
  then ``XMLSchema.validate``.

Both use the same compiled schema object (``default_loader().schema``), so
neither side compiles anything per message. After a warm-up the two sides run in
alternating rounds of a fixed length until the time budget is spent; each side's
rate is the median of its per-round rates.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

from adapters.xdomea import validation
from bench import corpus
from schemas.loader import default_loader

#: The gateway path should reach at least this share of bare lxml's rate.
TARGET = 0.8
#: Length of one round of one side, in seconds.
ROUND_SECONDS = 0.1

#: The bare side's parser: the gateway's safety settings, created once and reused.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False
)


@dataclass(frozen=True)
class Sample:
    """One corpus message with the compiled schema of its version."""

    version: str
    size: str
    xml: bytes
    schema: etree.XMLSchema


def build_samples() -> list[Sample]:
    """A large and a small valid 0401 Abgabe per version, checked by both sides.

    Raises:
        RuntimeError: a message is invalid on either side (the benchmark would
            then measure error reporting, not validation).
    """
    found = []
    for version in corpus.VERSIONS:
        schema = default_loader().schema(version, "Abgabe")
        large = corpus.abgabe(version, [corpus.akte(corpus.dokumente(100))])
        small = corpus.abgabe(version, corpus.dokumente(1))
        for size, data in (("large", large), ("small", small)):
            sample = Sample(version=version, size=size, xml=data, schema=schema)
            if not (_gateway(sample) and _bare(sample)):
                raise RuntimeError(f"the {size} {version} message is not valid")
            found.append(sample)
    return found


def run(quick: bool) -> Iterator[dict[str, Any]]:
    """Measure the whole corpus, then the large and the small messages on their own."""
    budget = 3.0 if quick else 20.0
    everything = build_samples()
    _rate(_bare, everything, 0.3 if quick else 1.0)
    _rate(_gateway, everything, 0.3 if quick else 1.0)
    groups = {
        "validate_throughput": everything,
        "validate_throughput_large": [s for s in everything if s.size == "large"],
        "validate_throughput_small": [s for s in everything if s.size == "small"],
    }
    for name, group in groups.items():
        gateway, bare, rounds = _compare(group, budget)
        sizes = sorted({len(s.xml) for s in group})
        yield {
            "name": name,
            "value": round(gateway, 1),
            "unit": "messages/s",
            "baseline": round(bare, 1),
            "ratio": round(gateway / bare, 3),
            "target": TARGET,
            "rounds": rounds,
            "note": (
                f"{len(group)} messages of {sizes[0]}-{sizes[-1]} bytes, versions "
                f"{', '.join(corpus.VERSIONS)}; baseline is bare lxml parse + validate; "
                "target is the minimum ratio"
            ),
        }


def _compare(samples: Sequence[Sample], budget: float) -> tuple[float, float, int]:
    """Median rates of gateway and bare over alternating rounds, and the number of rounds."""
    gateway: list[float] = []
    bare: list[float] = []
    deadline = time.perf_counter() + budget
    while not gateway or time.perf_counter() < deadline:
        bare.append(_rate(_bare, samples, ROUND_SECONDS))
        gateway.append(_rate(_gateway, samples, ROUND_SECONDS))
    return statistics.median(gateway), statistics.median(bare), len(gateway)


def _rate(check: Callable[[Sample], bool], samples: Sequence[Sample], seconds: float) -> float:
    """Messages per second of ``check``, over whole passes of ``samples`` for ``seconds``."""
    done = 0
    start = time.perf_counter()
    while True:
        for sample in samples:
            check(sample)
        done += len(samples)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def _gateway(sample: Sample) -> bool:
    return validation.check_message(sample.xml).valid


def _bare(sample: Sample) -> bool:
    return sample.schema.validate(etree.fromstring(sample.xml, _PARSER))
