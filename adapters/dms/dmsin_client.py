"""A zeep client for the dmsin SOAP interface, run in worker threads, with errors translated.

Why zeep's synchronous client in a thread and not its ``AsyncClient``: a dmsin
call carries whole documents as base64 inside the XML, so building and parsing a
message is CPU and memory work of the size of the document. In a thread it never
blocks the event loop; zeep's async transport would parse on the loop. The sync
client also needs no extra HTTP library (zeep brings ``requests``), and its
connection pool is shared by the threads. The client is built once, on first
use, from the WSDL at the configured URL or path (WSDL loading is synchronous
and may fail while the DMS is down, which must not stop the gateway starting).

Every call gets the configured connect and read timeouts. A call whose awaiting
task is cancelled (the worker's attempt timeout) keeps running in its thread
until its own timeout; the next call through this client waits for such
stragglers first, so a retry never races a create still on the wire.

Error mapping (``DmsinError`` keeps the operation and a clear text):

* connection refused/reset, timeouts, TLS failures, HTTP 408/429/5xx without a
  SOAP fault, unreadable answers, SOAP faults with code Server/Receiver, a
  ``status`` listed in ``transient_status`` → ``TransientDeliveryError``;
* SOAP faults with code Client/Sender and any other non-zero ``status`` (the DMS
  refused what was sent) → ``DmsRefused``; other HTTP 4xx and requests zeep cannot
  build from the WSDL (a configuration problem) → ``PermanentDeliveryError``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import requests
import structlog
import zeep
import zeep.exceptions
from zeep.transports import Transport

from adapters.soap.session import CaSession, tls_session
from contracts.config import DmsinConfig
from gateway.errors import DmsRefused, PermanentDeliveryError, TransientDeliveryError

log = structlog.get_logger(__name__)

T = TypeVar("T")

_TRANSIENT_HTTP = frozenset({408, 425, 429})
_MAX_DETAIL = 300


class DmsinClient:
    """Calls dmsin operations; one instance per destination, shared by its deliveries."""

    def __init__(self, config: DmsinConfig) -> None:
        self.config = config
        self._service: Any = None
        self._build_lock = threading.Lock()
        self._stragglers: set[asyncio.Future[Any]] = set()
        self._session: CaSession | None = None

    @property
    def where(self) -> str:
        """The service address (or the WSDL location until it is loaded)."""
        return self.config.endpoint or self.config.wsdl

    async def call(self, operation: str, **values: Any) -> Any:
        """Call ``operation`` with ``values`` (``userlogin`` and job context are added).

        Returns:
            zeep's response object; its ``status`` was 0.

        Raises:
            TransientDeliveryError: retry later.
            PermanentDeliveryError: the DMS refused the request.
        """
        await self._settle()
        request = {**self._context(), **values}
        return await self._in_thread(lambda: self._call(operation, request))

    async def close(self) -> None:
        """Close the HTTP connection pool (after any call still running)."""
        await self._settle()
        if self._session is not None:
            self._session.close()
            self._session = None

    # ------------------------------------------------------------------ threads

    async def _in_thread(self, work: Callable[[], T]) -> T:
        future = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self._stragglers.add(future)
            future.add_done_callback(self._stragglers.discard)
            future.add_done_callback(_consume)
            raise

    async def _settle(self) -> None:
        """Wait for calls of cancelled attempts; they end by their own timeout."""
        while self._stragglers:
            await asyncio.wait(set(self._stragglers))

    # ------------------------------------------------------------------ sync

    def _context(self) -> dict[str, Any]:
        config = self.config
        context: dict[str, Any] = {"userlogin": config.userlogin}
        for key in ("jobposition", "joboe", "businessapp"):
            value = getattr(config, key)
            if value is not None:
                context[key] = value
        return context

    def _service_proxy(self) -> Any:
        with self._build_lock:
            if self._service is None:
                self._service = self._build()
            return self._service

    def _build(self) -> Any:
        config = self.config
        session = tls_session(config.ca_file, config.client_cert, config.client_key)
        timeouts = (config.connect_timeout_seconds, config.read_timeout_seconds)
        # zeep is only partly annotated (no-untyped-call below).
        transport = Transport(  # type: ignore[no-untyped-call]
            session=session, timeout=config.connect_timeout_seconds, operation_timeout=timeouts
        )
        settings = zeep.Settings(
            strict=True,
            # Base64 documents exceed libxml2's 10 MB text limit; safe with entities off.
            xml_huge_tree=True,
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
        try:
            client = zeep.Client(  # type: ignore[no-untyped-call]
                config.wsdl, transport=transport, settings=settings
            )
        except requests.exceptions.SSLError as exc:
            session.close()
            raise TransientDeliveryError(
                f"TLS with {config.wsdl} failed while loading the WSDL: {_short(exc)}; check "
                "dmsin.ca_file, client_cert and client_key"
            ) from exc
        except (requests.RequestException, OSError) as exc:
            session.close()
            raise TransientDeliveryError(
                f"cannot load the dmsin WSDL from {config.wsdl}: {_short(exc)}; check the "
                f"destination's dmsin.wsdl and that the DMS is reachable{_tls_hint(config.wsdl)}"
            ) from exc
        except zeep.exceptions.Error as exc:
            session.close()
            raise TransientDeliveryError(
                f"the dmsin WSDL at {config.wsdl} is unusable: {_short(exc)}"
            ) from exc
        binding, address = _binding(client, config.soap_version)
        self._session = session
        log.info("dmsin_client_ready", wsdl=config.wsdl, endpoint=config.endpoint or address)
        return client.create_service(binding, config.endpoint or address)  # type: ignore[no-untyped-call]

    def _call(self, operation: str, request: dict[str, Any]) -> Any:
        service = self._service_proxy()
        where = f"{operation} at {self.config.endpoint or self.where}"
        try:
            response = getattr(service, operation)(**request)
        except zeep.exceptions.Fault as exc:
            raise _fault(exc, where) from exc
        except zeep.exceptions.TransportError as exc:
            text = f"{where} answered HTTP {exc.status_code}: {_short(exc.message)}"
            if exc.status_code in _TRANSIENT_HTTP or exc.status_code >= 500:
                raise TransientDeliveryError(text) from exc
            raise PermanentDeliveryError(text + "; check the destination's endpoint") from exc
        except requests.exceptions.SSLError as exc:
            raise TransientDeliveryError(
                f"TLS with {where} failed: {_short(exc)}; check dmsin.ca_file, client_cert and "
                "client_key"
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise TransientDeliveryError(
                f"{where} did not answer within {self.config.read_timeout_seconds:g} s "
                f"(connect {self.config.connect_timeout_seconds:g} s); the DMS may still "
                "complete it, the retry will find it"
            ) from exc
        except requests.exceptions.RequestException as exc:
            address = self.config.endpoint or self.config.wsdl
            raise TransientDeliveryError(
                f"{where} unreachable: {_short(exc)}{_tls_hint(address)}"
            ) from exc
        except (zeep.exceptions.XMLSyntaxError, zeep.exceptions.XMLParseError) as exc:
            raise TransientDeliveryError(f"{where} answered unreadable XML: {_short(exc)}") from exc
        except (zeep.exceptions.ValidationError, TypeError) as exc:
            raise PermanentDeliveryError(
                f"cannot build {operation} from the data: {_short(exc)} (the WSDL at "
                f"{self.config.wsdl} does not take it)"
            ) from exc
        status = getattr(response, "status", None)
        if status not in (0, None):
            message = getattr(response, "errormessage", None) or "no errormessage"
            text = f"the DMS refused {where}: status {status}: {_short(message)}"
            if status in self.config.transient_status:
                raise TransientDeliveryError(text + " (configured as transient)")
            raise DmsRefused(text)
        return response


def _binding(client: Any, soap_version: str) -> tuple[str, str]:
    """The qualified binding name and address of the WSDL's port for ``soap_version``."""
    from zeep.wsdl.bindings.soap import Soap11Binding, Soap12Binding

    wanted = Soap12Binding if soap_version == "1.2" else Soap11Binding
    for service in client.wsdl.services.values():
        for port in service.ports.values():
            if type(port.binding) is wanted:
                return str(port.binding.name), str(port.binding_options.get("address", ""))
    raise TransientDeliveryError(
        f"the dmsin WSDL has no SOAP {soap_version} port; set dmsin.soap_version to the "
        "version it offers"
    )


def _fault(exc: zeep.exceptions.Fault, where: str) -> Exception:
    code = str(exc.code or "")
    text = f"{where} answered a SOAP fault ({code or 'no code'}): {_short(exc.message)}"
    local = code.rsplit("}", 1)[-1].rsplit(":", 1)[-1]
    if local in ("Client", "Sender"):
        return DmsRefused(text)
    return TransientDeliveryError(text)


def _tls_hint(url: str) -> str:
    # With TLS 1.3 a server that refuses the client certificate just closes the
    # connection after the handshake, which looks like any dropped connection.
    if not url.startswith("https://"):
        return ""
    return (
        "; over https a closed connection can also mean the DMS refused the client "
        "certificate: check dmsin.client_cert and client_key"
    )


def _short(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "…"


def _consume(future: asyncio.Future[Any]) -> None:
    # A straggler's outcome is no longer awaited; fetch it so asyncio does not warn.
    if not future.cancelled():
        future.exception()
