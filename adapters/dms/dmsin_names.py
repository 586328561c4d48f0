"""Names from the dmsin interface that the adapter and the simulator share.

The object class references are those of the Fabasoft eGov-Suite as the
interface documents them for ``SearchObjNameGI`` (``objclass``). The WSDL
itself is never copied: it is read at run time from a configured URL or path.
"""

from __future__ import annotations

from typing import Final

#: Target namespace of the dmsin 1.10 WSDL (LHMBAI_15_1700_GIWSD).
NAMESPACE: Final = "http://schemas.fabasoft.com/websvc/LHMBAI_15_1700_GIWSD/"
#: Prefix of the field names inside the WSDL's complex types.
FIELD_PREFIX: Final = "LHMBAI_15_1700_"

#: Object classes (``objclass``) the import creates and the export reads.
AKTENPLANEINTRAG: Final = "COOELAK@1.1001:SubjectArea"
AKTE: Final = "DEPRECONFIG@15.1001:SubjectAreaFile"
VORGANG: Final = "DEPRECONFIG@15.1001:Procedure"
#: Searching with this class finds Eingänge and internal documents alike.
DOKUMENT: Final = "COOELAK@1.1001:SubFileDocument"
EINGANG: Final = "COOELAK@1.1001:Incoming"
INTERN: Final = "COOELAK@1.1001:Internal"
INHALT: Final = "COOSYSTEM@1.1:ContentObject"

DOKUMENT_KLASSEN: Final = frozenset({EINGANG, INTERN})


def field(name: str) -> str:
    """The element name of a complex-type field, e.g. ``filename`` → ``LHMBAI_15_1700_filename``."""
    return FIELD_PREFIX + name
