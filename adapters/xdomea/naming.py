"""File names of xdomea containers and of the message inside them.

Three spellings are in use and all are read:

* long (x-man, most DMS): ``<ProzessID>_Abgabe.Abgabe.0401.zip``
* numbered: ``<ProzessID>_0401_1.zip`` (part number after the code)
* short: ``<ProzessID>_0401.zip``

The message XML inside a container carries the same stem with ``.xml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from contracts.xdomea import MessageType

_NAME_RE = re.compile(
    r"^(?P<prozess_id>[^_/\\]+)_"
    r"(?:(?P<element>[A-Za-z]+\.[A-Za-z]+\.(?P<code_long>\d{4}))"
    r"|(?P<code>\d{4})(?:_(?P<part>\d+))?)"
    r"\.(?P<ext>zip|xml)$",
    re.IGNORECASE,
)


class NamingStyle(StrEnum):
    """How to spell a container's file name."""

    LONG = "long"
    NUMBERED = "numbered"
    SHORT = "short"


@dataclass(frozen=True)
class ParsedName:
    """What a container or message file name says."""

    prozess_id: str
    code: str
    element: str | None
    style: NamingStyle
    extension: str


def parse_name(name: str) -> ParsedName | None:
    """Parse a container (``.zip``) or message (``.xml``) file name; ``None`` if it is neither."""
    match = _NAME_RE.match(name)
    if match is None:
        return None
    if match.group("element"):
        style, code = NamingStyle.LONG, match.group("code_long")
    elif match.group("part"):
        style, code = NamingStyle.NUMBERED, match.group("code")
    else:
        style, code = NamingStyle.SHORT, match.group("code")
    return ParsedName(
        prozess_id=match.group("prozess_id"),
        code=code,
        element=match.group("element"),
        style=style,
        extension=match.group("ext").lower(),
    )


def _stem(prozess_id: str, typ: MessageType, style: NamingStyle) -> str:
    if style is NamingStyle.LONG:
        return f"{prozess_id}_{typ.element}"
    if style is NamingStyle.NUMBERED:
        return f"{prozess_id}_{typ.code}_1"
    return f"{prozess_id}_{typ.code}"


def container_name(prozess_id: str, typ: MessageType, style: NamingStyle = NamingStyle.LONG) -> str:
    """The container file name for a message."""
    return _stem(prozess_id, typ, style) + ".zip"


def message_name(prozess_id: str, typ: MessageType, style: NamingStyle = NamingStyle.LONG) -> str:
    """The name of the message XML entry inside a container."""
    return _stem(prozess_id, typ, style) + ".xml"
