"""The pure parts of the SOAP destination: message → parameters, answer → fields, fault → class.

No I/O here, so every rule of the declarative mapping is unit-tested without a server.

* ``parameters``: each dotted parameter path (``a.b.c``) gets the value of an XPath
  1.0 expression on the xdomea message, nested into dicts as zeep takes them. A
  node-set gives the text of its first node (``string()`` semantics); an empty
  node-set leaves the parameter out (zeep then refuses a required one); numbers
  that are whole are written without ``.0``; booleans as ``true``/``false``.
* ``response_fields``: dotted paths into zeep's answer, after
  ``zeep.helpers.serialize_object`` (lists are indexed by number).
* ``classify_fault``: transient or permanent by the configured rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from lxml import etree

from contracts.config import SoapFaultRules
from gateway.errors import PermanentDeliveryError


def parameters(
    root: etree._Element,
    mapping: Mapping[str, str],
    namespaces: Mapping[str, str],
    *,
    where: str,
) -> dict[str, Any]:
    """The operation's keyword arguments from ``mapping`` evaluated on ``root``.

    Args:
        root: the xdomea message's root element.
        mapping: dotted parameter path → XPath expression.
        namespaces: prefixes the expressions use (``xdomea`` is bound by the caller).
        where: how errors name the message.

    Raises:
        PermanentDeliveryError: an expression fails on this message (e.g. an unbound
            prefix), or two paths collide (``a`` and ``a.b``).
    """
    result: dict[str, Any] = {}
    for path, expression in mapping.items():
        try:
            value = _value(root.xpath(expression, namespaces=dict(namespaces)))
        except etree.XPathError as exc:
            raise PermanentDeliveryError(
                f"parameter {path}: the XPath {expression!r} fails on {where}: {exc}; fix the "
                "destination's parameters (prefixes go into its namespaces table)"
            ) from exc
        if value is None:
            continue
        _put(result, path.split("."), value, path)
    return result


def _value(found: object) -> str | None:
    if isinstance(found, list):
        if not found:
            return None
        first = found[0]
        if isinstance(first, etree._Element):
            return "".join(str(text) for text in first.itertext())
        return str(first)
    if isinstance(found, bool):
        return "true" if found else "false"
    if isinstance(found, float):
        return str(int(found)) if found.is_integer() else str(found)
    return str(found)


def _put(target: dict[str, Any], parts: list[str], value: str, path: str) -> None:
    for part in parts[:-1]:
        nested = target.setdefault(part, {})
        if not isinstance(nested, dict):
            raise PermanentDeliveryError(f"parameter {path} collides with parameter {part}")
        target = nested
    if isinstance(target.get(parts[-1]), dict):
        raise PermanentDeliveryError(f"parameter {path} collides with a longer parameter path")
    target[parts[-1]] = value


def response_fields(answer: Any, paths: Mapping[str, str]) -> dict[str, str | None]:
    """Each configured name with the value at its dotted path in ``answer`` (``None``: absent)."""
    return {name: lookup(answer, path) for name, path in paths.items()}


def lookup(answer: Any, path: str) -> str | None:
    """The value at a dotted path in a serialized zeep answer, as text."""
    current = answer
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit():
            index = int(part)
            current = current[index] if index < len(current) else None
        else:
            current = getattr(current, part, None)
        if current is None:
            return None
    if isinstance(current, bytes):
        return f"<{len(current)} bytes>"
    return str(current)


def fault_code(code: object) -> str:
    """The local part of a SOAP fault code (``soap:Client``, ``{ns}Sender`` → ``Client``…)."""
    text = str(code or "")
    return text.rsplit("}", 1)[-1].rsplit(":", 1)[-1]


def classify_fault(
    code: object, message: str, rules: SoapFaultRules
) -> Literal["transient", "permanent"]:
    """Whether a SOAP fault is worth a retry.

    Order: ``transient_messages`` match → transient; ``permanent_messages`` match →
    permanent; the code's local part in ``permanent_codes`` → permanent; otherwise
    (Server, Receiver, unknown codes) transient.
    """
    if any(re.search(pattern, message) for pattern in rules.transient_messages):
        return "transient"
    if any(re.search(pattern, message) for pattern in rules.permanent_messages):
        return "permanent"
    if fault_code(code) in rules.permanent_codes:
        return "permanent"
    return "transient"
