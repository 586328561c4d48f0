"""The XTA 2 request schemas, compiled from the configured ``XTA.wsdl``.

The WSDL's ``types`` section imports the OSCI and XTA schemas that lie beside it;
they are compiled once from there (the project ships none of them). Resolution
never leaves the local files: the parser has no network access and no entities.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import cast

from lxml import etree

from adapters.xta.soap import XOP, Exception_, XtaFault
from gateway.errors import ConfigError

_WSDL = "http://schemas.xmlsoap.org/wsdl/"
_XSD = "http://www.w3.org/2001/XMLSchema"


class XtaSchema:
    """Validates request elements (body content, MessageMetaData) against the WSDL's schemas."""

    def __init__(self, wsdl: Path) -> None:
        """Compile the schemas of ``wsdl``.

        Raises:
            ConfigError: the WSDL or a schema it names is missing or unusable.
        """
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        try:
            document = etree.parse(str(wsdl), parser)
            found = document.find(f"{{{_WSDL}}}types/{{{_XSD}}}schema")
            if found is None:
                raise ConfigError(f"{wsdl}: no <types><xsd:schema> in this WSDL; is it XTA.wsdl?")
            tree = etree.ElementTree(copy.deepcopy(found))
            # Imports and includes resolve relative to the WSDL's folder.
            tree.docinfo.URL = str(wsdl)
            self._schema = etree.XMLSchema(tree)
        except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
            raise ConfigError(
                f"xta.wsdl: cannot load the XTA schemas from {wsdl}: {exc}; point xta.wsdl at "
                "XTA.wsdl with its .xsd files beside it"
            ) from exc
        # An lxml validator keeps its error log on the object: one validation at a time.
        self._lock = threading.Lock()

    def check(self, element: etree._Element, what: str) -> None:
        """Validate ``element`` (an XOP include counts as empty base64 content).

        Raises:
            XtaFault: ParameterIsNotValidException naming the first violation.
        """
        candidate = copy.deepcopy(element)
        for include in candidate.iter(f"{{{XOP}}}Include"):
            parent = include.getparent()
            if parent is not None:
                parent.remove(include)
        with self._lock:
            valid = self._schema.validate(candidate)
            errors = list(cast("Iterable[etree._LogEntry]", self._schema.error_log))
        if not valid:
            first = errors[0].message if errors else "unknown violation"
            raise XtaFault(
                Exception_.PARAMETER_IS_NOT_VALID,
                "9022",
                f"{what} does not conform to the XTA 2 schema: {first}",
            )
