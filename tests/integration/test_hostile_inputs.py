"""Hostile and broken inputs: each is refused with its own specific error and leaves nothing behind."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapters.xdomea.container import ContainerLimits
from adapters.xdomea.files import Verdict, check_file
from tests.conftest import SHARED_SAMPLES
from tests.zipcraft import MESSAGE_NAME, SAMPLE_0503, SAMPLE_DATEINAME, Entry, write_zip

SAMPLE = (SHARED_SAMPLES / SAMPLE_0503).read_bytes()
PDF = (SHARED_SAMPLES / "pdfa" / "test_pdf_a1-b.pdf").read_bytes()

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<lolz>&lol4;</lolz>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xdomea:Abgabe.Abgabe.0401 xmlns:xdomea="urn:xoev-de:xdomea:schema:3.1.0">&xxe;</xdomea:Abgabe.Abgabe.0401>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE x SYSTEM "http://example.invalid/evil.dtd">
<x/>"""


def _container(*extra: Entry, message: bytes = SAMPLE, document: bool = True) -> list[Entry]:
    entries = [Entry(MESSAGE_NAME, message)]
    if document:
        entries.append(Entry(SAMPLE_DATEINAME, PDF, compress=False))
    return [*entries, *extra]


@dataclass(frozen=True)
class Case:
    """One hostile input, how to make it, and what must come out."""

    id: str
    make: Callable[[Path], Path]
    verdict: Verdict
    error: str  # regular expression the error or first finding must match
    limits: ContainerLimits = field(default_factory=ContainerLimits)


def _xml(data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "message.xml"
        path.write_bytes(data)
        return path

    return make


def _zip(entries: list[Entry]) -> Callable[[Path], Path]:
    return lambda tmp: write_zip(tmp / "container.zip", entries)


CASES = [
    Case("billion-laughs", _xml(BILLION_LAUGHS), Verdict.UNUSABLE, r"DTD|entit"),
    Case("xxe-external-entity", _xml(XXE), Verdict.UNUSABLE, r"DTD|entit"),
    Case("external-dtd", _xml(EXTERNAL_DTD), Verdict.UNUSABLE, r"DTD"),
    Case("malformed-xml", _xml(b"<a><b></a>"), Verdict.UNUSABLE, r"not well-formed XML \(line 1\)"),
    Case("empty-file", _xml(b""), Verdict.UNUSABLE, r"not well-formed XML"),
    Case(
        "not-xdomea",
        _xml(b"<html xmlns='http://www.w3.org/1999/xhtml'/>"),
        Verdict.UNUSABLE,
        r"root element \{http://www.w3.org/1999/xhtml\}html is not an xdomea message",
    ),
    Case(
        "unknown-version",
        _xml(SAMPLE.replace(b"schema:3.0.0", b"schema:4.0.0")),
        Verdict.UNUSABLE,
        r"^unsupported xdomea version 4\.0\.0; installed: 2\.3\.0, 2\.4\.0, 3\.0\.0, 3\.1\.0$",
    ),
    Case(
        "message-type-of-other-version",
        _xml(
            SAMPLE.replace(b"schema:3.0.0", b"schema:2.3.0").replace(
                b"Aussonderung.Aussonderung.0503",
                b"Aussonderung.AussonderungEmpfangBestaetigen.0507",
            )
        ),
        Verdict.UNUSABLE,
        r"not a message type of xdomea 2\.3\.0 \(it exists in xdomea 3\.0\.0, 3\.1\.0\)",
    ),
    Case(
        "schema-invalid",
        _xml(
            SAMPLE.replace(b"<xdomea:ProzessID>", b"<xdomea:ProzessIDX>").replace(
                b"</xdomea:ProzessID>", b"</xdomea:ProzessIDX>"
            )
        ),
        Verdict.INVALID,
        r"ProzessIDX",
    ),
    Case("not-a-zip", _xml(b"PK\x03\x04garbage"), Verdict.UNUSABLE, r"not a readable ZIP"),
    Case(
        "path-traversal",
        _zip(_container(Entry("../evil.txt", b"x"))),
        Verdict.UNUSABLE,
        r"points outside the container",
    ),
    Case(
        "path-traversal-backslash",
        _zip(_container(Entry("docs\\..\\..\\evil.txt", b"x"))),
        Verdict.UNUSABLE,
        r"points outside the container",
    ),
    Case(
        "absolute-path",
        _zip(_container(Entry("/etc/cron.d/evil", b"x"))),
        Verdict.UNUSABLE,
        r"absolute path",
    ),
    Case(
        "windows-drive-path",
        _zip(_container(Entry("C:/Windows/evil.dll", b"x"))),
        Verdict.UNUSABLE,
        r"absolute path",
    ),
    Case(
        "symlink",
        _zip(_container(Entry("link", b"/etc/passwd", symlink=True))),
        Verdict.UNUSABLE,
        r"symbolic link",
    ),
    Case(
        "duplicate-name",
        _zip(_container(Entry(SAMPLE_DATEINAME, b"other"))),
        Verdict.UNUSABLE,
        r"duplicate entry name",
    ),
    Case(
        "duplicate-name-differing-case",
        _zip(_container(Entry(SAMPLE_DATEINAME.upper(), b"x"))),
        Verdict.UNUSABLE,
        r"duplicate entry name",
    ),
    Case(
        "encrypted-entry",
        _zip(_container(Entry("secret.pdf", b"x", encrypted=True))),
        Verdict.UNUSABLE,
        r"encrypted",
    ),
    Case(
        "zip-bomb-ratio",
        _zip(_container(Entry("bomb.bin", bytes(64 * 1024 * 1024)))),
        Verdict.UNUSABLE,
        r"expands \d+-fold",
    ),
    Case(
        "too-many-entries",
        _zip(_container(*[Entry(f"f{i}.txt", b"x") for i in range(20)])),
        Verdict.UNUSABLE,
        r"22 entries exceed the limit of 10",
        ContainerLimits(max_entries=10),
    ),
    Case(
        "too-large-in-total",
        _zip(_container(Entry("big.bin", os.urandom(200_000)))),
        Verdict.UNUSABLE,
        r"more than 100000 bytes",
        ContainerLimits(max_total_bytes=100_000),
    ),
    Case(
        "no-message",
        _zip([Entry(SAMPLE_DATEINAME, PDF)]),
        Verdict.UNUSABLE,
        r"no xdomea message in the container",
    ),
    Case(
        "two-messages",
        _zip(_container(Entry("11111111-1111-1111-1111-111111111111_0401.xml", b"<x/>"))),
        Verdict.UNUSABLE,
        r"more than one xdomea message",
    ),
    Case(
        "missing-document",
        _zip(_container(document=False)),
        Verdict.INVALID,
        rf"referenced Primaerdokument {SAMPLE_DATEINAME} is missing",
    ),
    Case(
        "missing-document-case-differs",
        _zip([Entry(MESSAGE_NAME, SAMPLE), Entry(SAMPLE_DATEINAME.replace(".pdf", ".PDF"), PDF)]),
        Verdict.INVALID,
        r"an entry differs only in case",
    ),
    Case(
        "dtd-in-container-message",
        _zip(_container(message=BILLION_LAUGHS)),
        Verdict.UNUSABLE,
        r"DTD|entit",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_refused_with_its_specific_error(case: Case, tmp_path: Path) -> None:
    """Each hostile or broken input yields its own verdict and a specific error text."""
    path = case.make(tmp_path)
    before = sorted(tmp_path.rglob("*"))

    result = check_file(path, limits=case.limits)

    assert result.verdict is case.verdict
    if case.verdict is Verdict.UNUSABLE:
        assert result.error is not None
        text = result.error.message
    else:
        text = next(f.message for f in result.findings if f.severity.value == "error")
    assert re.search(case.error, text), text
    assert sorted(tmp_path.rglob("*")) == before, "checking must not leave files behind"


def test_unreferenced_file_is_reported_but_not_an_error(tmp_path: Path) -> None:
    """A file no Dateiname references is reported as a warning and the container stays valid."""
    path = write_zip(tmp_path / "c.zip", _container(Entry("notes.txt", b"hello")))

    result = check_file(path)

    assert result.verdict is Verdict.VALID
    assert [e.name for e in result.entries if e.role == "unreferenced"] == ["notes.txt"]
    assert any("notes.txt" in f.message and f.severity.value == "warning" for f in result.findings)


def test_billion_laughs_is_refused_without_expanding(tmp_path: Path) -> None:
    """Refusing entity bombs does not expand them first (memory stays flat)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    nested = BILLION_LAUGHS.replace(b"<lolz>&lol4;</lolz>", b"").replace(
        b"]>",
        b"""
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]><lolz>&lol9;</lolz>""",
    )
    path = tmp_path / "bomb.xml"
    path.write_bytes(nested)

    result = check_file(path)

    assert result.verdict is Verdict.UNUSABLE
    growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert growth_kib < 100 * 1024
