"""What the gateway knows about each xdomea version, independent of any installation.

The catalog is static data: namespace, XRepository id, the entry-point XSD per
message family, and the pinned SHA-256 of every schema file (``pins.json``,
paths relative to a schema root laid out as ``<version>/<file>`` and
``xoev/<file>``). The XSDs themselves are never part of the repository; they are
installed by ``schemas.store``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

NAMESPACE_PREFIX = "urn:xoev-de:xdomea:schema:"
_NAMESPACE_RE = re.compile(r"^urn:xoev-de:xdomea:schema:(?P<version>\d+\.\d+\.\d+)$")

#: 2.x schemas have one entry point per message family ("Bereich"); the family is
#: the first part of the message's root element name (``Abgabe`` in ``Abgabe.Abgabe.0401``).
_FAMILY_ENTRY_POINTS_2X = {
    "Abgabe": "xdomea-Nachrichten-AbgabeDurchfuehren.xsd",
    "Aktenplan": "xdomea-Nachrichten-AktenplanAustauschen.xsd",
    "Aussonderung": "xdomea-Nachrichten-AussonderungDurchfuehren.xsd",
    "FVDaten": "xdomea-Nachrichten-FachverfahrensdatenAustauschen.xsd",
    "Geschaeftsgang": "xdomea-Nachrichten-GeschaeftsgangDurchfuehren.xsd",
    "Information": "xdomea-Nachrichten-InformationAustauschen.xsd",
}


@dataclass(frozen=True)
class XdomeaVersion:
    """One xdomea version as the catalog knows it."""

    version: str
    xrepository_id: str
    #: Entry-point file per family; ``None`` key means "every family" (3.x ``xdomea.xsd``).
    entry_points: dict[str | None, str]
    #: Pinned SHA-256 per file path relative to the schema root.
    files: dict[str, str]

    @property
    def namespace(self) -> str:
        """The XML namespace URN of this version's messages."""
        return NAMESPACE_PREFIX + self.version

    @property
    def major(self) -> int:
        """The major version number (2 or 3)."""
        return int(self.version.split(".", 1)[0])

    def entry_point(self, family: str) -> str:
        """Path (relative to the schema root) of the XSD that declares ``family``'s messages.

        Raises:
            KeyError: the family has no schema in this version.
        """
        name = self.entry_points.get(None) or self.entry_points[family]
        return f"{self.version}/{name}"

    @property
    def families(self) -> tuple[str, ...]:
        """Message families with an entry point of their own (2.x) or all of them (3.x)."""
        return tuple(k for k in self.entry_points if k is not None)


@cache
def _pins() -> dict[str, dict[str, str]]:
    data = json.loads(resources.files("schemas").joinpath("pins.json").read_text("utf-8"))
    files: dict[str, dict[str, str]] = data["files"]
    return files


@cache
def versions() -> dict[str, XdomeaVersion]:
    """All xdomea versions the gateway supports, oldest first."""
    result: dict[str, XdomeaVersion] = {}
    for version, files in sorted(_pins().items()):
        entry_points: dict[str | None, str]
        if version.startswith("2."):
            entry_points = dict(_FAMILY_ENTRY_POINTS_2X.items())
        else:
            entry_points = {None: "xdomea.xsd"}
        result[version] = XdomeaVersion(
            version=version,
            xrepository_id=f"urn:xoev-de:xdomea:kosit:standard:xdomea_{version}",
            entry_points=entry_points,
            files=dict(files),
        )
    return result


def get(version: str) -> XdomeaVersion:
    """The catalog entry of ``version``.

    Raises:
        KeyError: the version is not supported.
    """
    return versions()[version]


def version_of_namespace(namespace: str) -> str | None:
    """The version number in an xdomea namespace URN, or ``None`` if it is not one."""
    match = _NAMESPACE_RE.match(namespace)
    return match.group("version") if match else None
