"""The ``soap`` destination: call one operation of a partner's WSDL for each routed message.

For Fachverfahren with a SOAP API of their own: the configuration names the WSDL,
the operation and a declarative mapping (``adapters.soap.mapping``) from XPath
expressions on the xdomea message to the operation's parameters; the answer's
configured fields are logged with the delivery (event ``soap_call_done``) and an
optional success field decides whether the partner accepted the call.

The zeep client is built once: at start from a WSDL file (a broken file stops the
start with a clear error), or on the first delivery from a WSDL URL (a partner
that is down at start must not stop the gateway). Calls run in threads with the
configured connect and read timeouts; the same client serves every delivery.

Error mapping:

* connection errors, timeouts, HTTP 408/425/429/5xx, unreadable answers, SOAP
  faults the rules call transient (default: Server/Receiver) → ``TransientDeliveryError``;
* SOAP faults the rules call permanent (default: Client/Sender), other HTTP 4xx,
  parameters the WSDL does not take, an answer whose success field says no, a
  message the mapping cannot be evaluated on → ``PermanentDeliveryError``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import requests
import structlog
import zeep
import zeep.exceptions
import zeep.helpers
from lxml import etree
from zeep.transports import Transport

from adapters.dms.destination import verify_blob
from adapters.soap import mapping
from adapters.soap.session import tls_session
from adapters.xdomea.container import Container
from adapters.xdomea.validation import check_message
from contracts.config import SoapDestination
from contracts.delivery import Outbound
from gateway.errors import (
    ConfigError,
    GatewayError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

log = structlog.get_logger(__name__)

_TRANSIENT_HTTP = frozenset({408, 425, 429})
_MAX_DETAIL = 300


class SoapCall:
    """Delivers messages by calling one SOAP operation with values mapped from them."""

    def __init__(self, name: str, config: SoapDestination) -> None:
        """A destination calling ``config.operation``; loads a WSDL file right away.

        Raises:
            ConfigError: the WSDL file cannot be loaded or lacks the service, port or
                operation.
        """
        self.name = name
        self.config = config
        self._lock = threading.Lock()
        self._service: Any = None
        self._session: requests.Session | None = None
        if not config.wsdl.startswith(("http://", "https://")):
            try:
                self._service = self._build()
            except GatewayError as exc:
                raise ConfigError(f"destinations.{name}: {exc.message}") from exc

    async def deliver(self, item: Outbound) -> None:
        """Call the operation with the message's values.

        Raises:
            TransientDeliveryError: the partner is unreachable or failing; retry.
            PermanentDeliveryError: the partner refused the call, or the mapping does
                not fit the message or the WSDL.
        """
        kwargs = await asyncio.to_thread(self._parameters, item)
        answer = await asyncio.to_thread(self._call, kwargs)
        serialized = zeep.helpers.serialize_object(answer, dict)  # type: ignore[no-untyped-call]
        response = self.config.response
        fields = mapping.response_fields(serialized, response.fields)
        if response.success_field is not None:
            value = mapping.lookup(serialized, response.success_field)
            if value not in response.success_values:
                error = (
                    mapping.lookup(serialized, response.error_field)
                    if response.error_field
                    else None
                )
                raise PermanentDeliveryError(
                    f"{self._where()} refused message {item.message_id}: "
                    f"{response.success_field} is {value!r} (success: "
                    f"{', '.join(response.success_values)})"
                    + (f": {_short(error)}" if error else "")
                )
        log.info(
            "soap_call_done",
            destination=self.name,
            operation=self.config.operation,
            message_id=item.message_id,
            fields=fields,
        )

    def _parameters(self, item: Outbound) -> dict[str, Any]:
        """Check the blob and evaluate the mapping on the message; in a worker thread."""
        verify_blob(item)
        where = f"message {item.message_id} (ProzessID {item.prozess_id})"
        try:
            if item.content_kind == "container":
                # Only the message XML: the blob's SHA-256 was just verified, and the
                # documents were checked at intake; no need to hash them again.
                with Container(item.blob_path) as container:
                    root = container.checked.detected.root
            else:
                root = check_message(item.blob_path.read_bytes(), where=where).detected.root
        except GatewayError as exc:
            raise PermanentDeliveryError(f"{where} cannot be read: {exc.message}") from exc
        namespaces = {"xdomea": etree.QName(root).namespace or "", **self.config.namespaces}
        return mapping.parameters(root, self.config.parameters, namespaces, where=where)

    # ------------------------------------------------------------------ zeep, in threads

    def _proxy(self) -> Any:
        with self._lock:
            if self._service is None:
                self._service = self._build()
            return self._service

    def _build(self) -> Any:
        config = self.config
        # The configured CA file wins over REQUESTS_CA_BUNDLE, as for dmsin and XTA.
        session = tls_session(config.ca_file)
        transport = Transport(  # type: ignore[no-untyped-call]
            session=session,
            timeout=config.connect_timeout_seconds,
            operation_timeout=(config.connect_timeout_seconds, config.read_timeout_seconds),
        )
        settings = zeep.Settings(
            strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
        try:
            client = zeep.Client(  # type: ignore[no-untyped-call]
                config.wsdl,
                transport=transport,
                settings=settings,
                service_name=config.service,
                port_name=config.port,
            )
            service = (
                client.create_service(  # type: ignore[no-untyped-call]
                    client.service._binding.name, config.endpoint
                )
                if config.endpoint
                else client.service
            )
            if config.operation not in service._operations:
                known = ", ".join(sorted(service._operations)[:20])
                raise PermanentDeliveryError(
                    f"the WSDL at {config.wsdl} has no operation {config.operation!r} "
                    f"(it has {known}…)"
                )
        except (requests.RequestException, OSError) as exc:
            session.close()
            raise TransientDeliveryError(
                f"cannot load the WSDL from {config.wsdl}: {_short(exc)}; check the "
                "destination's wsdl and that the partner is reachable"
            ) from exc
        except (zeep.exceptions.Error, ValueError, etree.XMLSyntaxError) as exc:
            session.close()
            raise PermanentDeliveryError(
                f"the WSDL at {config.wsdl} is unusable: {_short(exc)}"
            ) from exc
        self._session = session
        log.info("soap_client_ready", destination=self.name, wsdl=config.wsdl)
        return service

    def _where(self) -> str:
        return f"{self.config.operation} at {self.config.endpoint or self.config.wsdl}"

    def _call(self, kwargs: dict[str, Any]) -> Any:
        service = self._proxy()
        where = self._where()
        try:
            return getattr(service, self.config.operation)(**kwargs)
        except zeep.exceptions.Fault as exc:
            text = (
                f"{where} answered a SOAP fault ({mapping.fault_code(exc.code) or 'no code'}): "
                f"{_short(exc.message)}"
            )
            if (
                mapping.classify_fault(exc.code, str(exc.message), self.config.faults)
                == "permanent"
            ):
                raise PermanentDeliveryError(text) from exc
            raise TransientDeliveryError(text) from exc
        except zeep.exceptions.TransportError as exc:
            text = f"{where} answered HTTP {exc.status_code}: {_short(exc.message)}"
            if exc.status_code in _TRANSIENT_HTTP or exc.status_code >= 500:
                raise TransientDeliveryError(text) from exc
            raise PermanentDeliveryError(text + "; check the destination's endpoint") from exc
        except requests.exceptions.Timeout as exc:
            raise TransientDeliveryError(
                f"{where} did not answer within {self.config.read_timeout_seconds:g} s"
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise TransientDeliveryError(f"{where} unreachable: {_short(exc)}") from exc
        except (zeep.exceptions.XMLSyntaxError, zeep.exceptions.XMLParseError) as exc:
            raise TransientDeliveryError(f"{where} answered unreadable XML: {_short(exc)}") from exc
        except (zeep.exceptions.ValidationError, TypeError) as exc:
            raise PermanentDeliveryError(
                f"cannot build {self.config.operation} from the mapped parameters "
                f"{sorted(kwargs)}: {_short(exc)}; fix the destination's parameters"
            ) from exc

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._session is not None:
            self._session.close()
            self._session = None


def _short(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "…"
