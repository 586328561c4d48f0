"""What the simulator learns from the dmsin WSDL: operations, request schema, zeep types.

Everything is derived from the unchanged WSDL file at start-up: the operation
names and SOAP actions of both bindings, the embedded XML schema (compiled with
lxml to validate every request body strictly), and zeep's element types (to read
request values and to write responses in the schema's element order).
"""

from __future__ import annotations

import copy
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zeep
import zeep.exceptions
from lxml import etree

_WSDL = "http://schemas.xmlsoap.org/wsdl/"
_XS = "http://www.w3.org/2001/XMLSchema"
_SOAP_BINDINGS = (
    "http://schemas.xmlsoap.org/wsdl/soap/",
    "http://schemas.xmlsoap.org/wsdl/soap12/",
)
#: The service address inside <soap:address location="…"/> and <soap12:address …/>.
_ADDRESS = re.compile(rb'(<(?:[A-Za-z0-9_]+:)?address\b[^>]*?\blocation=")[^"]*(")')


@dataclass
class ServiceDescription:
    """The simulator's view of the WSDL."""

    path: Path
    wsdl_bytes: bytes
    namespace: str
    #: Operation name → SOAP action, from the SOAP 1.1 and 1.2 bindings.
    operations: dict[str, str]
    client: Any
    _schema_xml: etree._Element
    _local: threading.local = field(default_factory=threading.local)

    @classmethod
    def load(cls, path: Path) -> ServiceDescription:
        """Read and compile the WSDL at ``path``.

        Raises:
            ValueError: the file is not a WSDL with one embedded schema.
        """
        data = path.read_bytes()
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        try:
            root = etree.fromstring(data, parser)
        except etree.XMLSyntaxError as exc:
            raise ValueError(f"{path} is not well-formed XML: {exc}") from exc
        if etree.QName(root).namespace != _WSDL:
            raise ValueError(f"{path} is not a WSDL 1.1 document")
        schemas = root.findall(f"{{{_WSDL}}}types/{{{_XS}}}schema")
        if len(schemas) != 1:
            raise ValueError(f"{path} has {len(schemas)} embedded schemas; expected one")
        operations: dict[str, str] = {}
        for operation in root.iterfind(f"{{{_WSDL}}}binding/{{{_WSDL}}}operation"):
            for ns in _SOAP_BINDINGS:
                soap = operation.find(f"{{{ns}}}operation")
                if soap is not None:
                    operations[operation.get("name", "")] = soap.get("soapAction", "")
        # zeep is only partly annotated.
        try:
            client = zeep.Client(  # type: ignore[no-untyped-call]
                str(path), settings=zeep.Settings(strict=True, xml_huge_tree=True)
            )
        except zeep.exceptions.Error as exc:
            raise ValueError(f"zeep cannot read {path}: {exc}") from exc
        return cls(
            path=path,
            wsdl_bytes=data,
            namespace=root.get("targetNamespace", ""),
            operations=operations,
            client=client,
            _schema_xml=copy.deepcopy(schemas[0]),
        )

    def schema(self) -> etree.XMLSchema:
        """The compiled request/response schema, one per thread (lxml keeps errors on it)."""
        compiled: etree.XMLSchema | None = getattr(self._local, "schema", None)
        if compiled is None:
            compiled = etree.XMLSchema(self._schema_xml)
            self._local.schema = compiled
        return compiled

    def element(self, local: str) -> Any:
        """zeep's type of the global element ``local`` (e.g. ``CreateFileGIResponse``)."""
        return self.client.get_element(f"{{{self.namespace}}}{local}")

    def wsdl_for(self, address: str) -> bytes:
        """The WSDL bytes with every service address replaced by ``address``."""
        return _ADDRESS.sub(lambda m: m.group(1) + address.encode() + m.group(2), self.wsdl_bytes)
