"""The dmsin DMS simulator: an aiohttp SOAP server made from the unchanged WSDL.

``GET /?wsdl`` serves the WSDL file as it is on disk, only its service addresses
rewritten to the simulator's own URL. ``POST /`` takes SOAP 1.1 (``text/xml`` +
``SOAPAction``) and SOAP 1.2 (``application/soap+xml``) requests, validates each
body against the WSDL's own schema, carries out the operations in
``operations.HANDLERS`` on a durable SQLite store in the data folder, and answers
every unknown, unimplemented or invalid request with a SOAP fault that names the
problem.

A small control API under ``/_control`` serves the tests: ``GET objects``,
``GET calls``, ``POST faults`` / ``DELETE faults`` (see ``faults.py``) and
``POST aktenplan`` (create an Aktenplaneintrag, idempotent by name).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import structlog
from aiohttp import web
from lxml import etree
from pydantic import ValidationError

from adapters.dms import dmsin_names as names
from adapters.dms.sim import operations, soap
from adapters.dms.sim.faults import FaultPlan, FaultRule
from adapters.dms.sim.store import Store
from adapters.dms.sim.wsdl import ServiceDescription

log = structlog.get_logger(__name__)

#: Requests may carry large documents as base64.
DEFAULT_MAX_BODY = 512 * 1024**2


@dataclass
class Simulator:
    """The simulator's state: the service description, the store, faults and a call log."""

    description: ServiceDescription
    data: Path
    aktenplan: tuple[str, ...] = ()
    faults: FaultPlan = field(default_factory=FaultPlan)
    #: The latest operations called, oldest first (bounded: the simulator may run for days).
    calls: deque[str] = field(default_factory=lambda: deque(maxlen=10_000))
    in_flight: int = 0
    _store: Store | None = None

    @property
    def store(self) -> Store:
        """The open store (opened by the app's cleanup context)."""
        if self._store is None:  # pragma: no cover - only before start-up
            raise RuntimeError("the simulator's store is not open")
        return self._store

    def prepare(self, data: bytes, content_type: str, soapaction: str | None) -> _Call:
        """Parse, identify and validate a request; in a worker thread.

        Raises:
            SoapFault: anything wrong with the request, with what and where.
        """
        version = soap.version_of(content_type)
        action = soap.action_of(version, soapaction, content_type)
        request = soap.parse_request(data, version, action)
        qname = etree.QName(request.body)
        operation = qname.localname
        if qname.namespace != self.description.namespace or operation not in (
            self.description.operations
        ):
            raise soap.SoapFault(
                f"unknown operation {{{qname.namespace}}}{operation}: the dmsin WSDL defines no "
                f"such operation in {self.description.namespace}"
            )
        expected = self.description.operations[operation]
        if action and expected and action != expected:
            raise soap.SoapFault(
                f"SOAP action {action!r} does not match the body's operation {operation} "
                f"(expected {expected!r})"
            )
        if operation not in operations.HANDLERS:
            raise soap.SoapFault(
                f"operation {operation} is in the WSDL but not implemented by the DMS simulator "
                f"(implemented: {', '.join(sorted(operations.HANDLERS))})",
                sender=False,
            )
        schema = self.description.schema()
        if not schema.validate(request.body):
            problems = "; ".join(
                f"line {e.line}: {e.message}"
                for e in list(cast("Iterable[etree._LogEntry]", schema.error_log))[:5]
            )
            raise soap.SoapFault(f"invalid {operation} request: {problems}")
        values = self.description.element(operation).parse(
            request.body, self.description.client.wsdl.types
        )
        return _Call(operation=operation, version=version, values=values)

    def execute(self, call: _Call) -> bytes:
        """Carry out a validated call and render the response envelope; in a worker thread."""
        try:
            result = operations.HANDLERS[call.operation](self.store, call.values)
        except operations.Business as refusal:
            result = {"status": refusal.status, "errormessage": refusal.message}
        return self.render(call, result)

    def render(self, call: _Call, result: dict[str, Any]) -> bytes:
        """The response envelope of ``call`` with ``result``."""
        element = self.description.element(f"{call.operation}Response")
        holder = etree.Element("holder")
        element.render(holder, element(**result))
        return soap.envelope(call.version, holder[0])


@dataclass(frozen=True)
class _Call:
    operation: str
    version: soap.SoapVersion
    values: Any


SIMULATOR = web.AppKey("dms_simulator", Simulator)


def create_app(
    wsdl: Path,
    data: Path,
    *,
    aktenplan: Sequence[str] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY,
) -> web.Application:
    """The simulator as an aiohttp application (tests call this directly).

    Args:
        wsdl: the dmsin WSDL file, served and used unchanged.
        data: folder of the durable store (created if missing).
        aktenplan: names of Aktenplaneinträge to create at start-up (if missing).
        max_body_bytes: largest request accepted.

    Raises:
        ValueError: ``wsdl`` is no usable WSDL.
        OSError: ``wsdl`` cannot be read.
    """
    description = ServiceDescription.load(wsdl)
    app = web.Application(client_max_size=max_body_bytes)
    app[SIMULATOR] = Simulator(description=description, data=data, aktenplan=tuple(aktenplan))
    app.cleanup_ctx.append(_store_context)
    app.router.add_get("/", _wsdl)
    app.router.add_post("/", _soap)
    app.router.add_get("/_control/objects", _objects)
    app.router.add_get("/_control/calls", _calls)
    app.router.add_post("/_control/faults", _add_fault)
    app.router.add_delete("/_control/faults", _clear_faults)
    app.router.add_post("/_control/aktenplan", _add_aktenplan)
    return app


async def _store_context(app: web.Application) -> AsyncIterator[None]:
    sim = app[SIMULATOR]
    sim._store = await asyncio.to_thread(Store, sim.data)
    for name in sim.aktenplan:
        await asyncio.to_thread(aktenplaneintrag, sim.store, name)
    yield
    await asyncio.to_thread(sim.store.close)


def aktenplaneintrag(store: Store, name: str) -> str:
    """The address of the Aktenplaneintrag ``name``, created if missing."""
    for objekt in store.all():
        if objekt.objclass == names.AKTENPLANEINTRAG and objekt.objname == name:
            return objekt.address
    return store.create(names.AKTENPLANEINTRAG, None, name, {}, {}).address


# --------------------------------------------------------------------------- SOAP


async def _wsdl(request: web.Request) -> web.Response:
    if "wsdl" not in request.query and "WSDL" not in request.query:
        raise web.HTTPNotFound(text="the dmsin simulator serves its WSDL at /?wsdl\n")
    sim = request.app[SIMULATOR]
    address = str(request.url.origin()) + "/"
    return web.Response(
        body=sim.description.wsdl_for(address), content_type="text/xml", charset="utf-8"
    )


async def _soap(request: web.Request) -> web.StreamResponse:
    data = await request.read()
    # A real DMS finishes what it started even when the client hangs up (a timeout):
    # the answer is lost, the object exists. So the work is shielded from aiohttp
    # cancelling the handler on disconnect.
    return await asyncio.shield(asyncio.ensure_future(_answer(request, data)))


async def _answer(request: web.Request, data: bytes) -> web.StreamResponse:
    sim = request.app[SIMULATOR]
    content_type = request.headers.get("Content-Type", "")
    fallback = (
        soap.SoapVersion.V12 if "application/soap+xml" in content_type else soap.SoapVersion.V11
    )
    sim.in_flight += 1
    try:
        try:
            call = await asyncio.to_thread(
                sim.prepare, data, content_type, request.headers.get("SOAPAction")
            )
        except soap.SoapFault as refused:
            log.info("dms_sim_refused", reason=refused.message)
            return _fault_response(fallback, refused)
        sim.calls.append(call.operation)
        before = sim.faults.strike(call.operation, "before", data)
        if before is not None:
            log.info("dms_sim_fault", operation=call.operation, kind=before.kind, when="before")
            if before.kind == "business":
                body = await asyncio.to_thread(
                    sim.render, call, {"status": before.status, "errormessage": before.message}
                )
                return _soap_response(call.version, body)
            if before.kind != "latency":
                return await _inject(request, call.version, before)
            await asyncio.sleep(before.seconds)
        body = await asyncio.to_thread(sim.execute, call)
        after = sim.faults.strike(call.operation, "after", data)
        if after is not None:
            log.info("dms_sim_fault", operation=call.operation, kind=after.kind, when="after")
            if after.kind != "latency":
                return await _inject(request, call.version, after)
            await asyncio.sleep(after.seconds)
        return _soap_response(call.version, body)
    finally:
        sim.in_flight -= 1


def _soap_response(version: soap.SoapVersion, body: bytes) -> web.Response:
    return web.Response(body=body, content_type=version.content_type, charset="utf-8")


def _fault_response(version: soap.SoapVersion, refused: soap.SoapFault) -> web.Response:
    status, body = soap.fault(version, refused)
    return web.Response(
        status=status, body=body, content_type=version.content_type, charset="utf-8"
    )


async def _inject(
    request: web.Request, version: soap.SoapVersion, rule: FaultRule
) -> web.StreamResponse:
    if rule.kind == "http500":
        return web.Response(status=500, text=f"Internal Server Error: {rule.message}\n")
    if rule.kind == "fault":
        return _fault_response(version, soap.SoapFault(rule.message, sender=False))
    if rule.kind == "refuse":
        return _fault_response(version, soap.SoapFault(rule.message, sender=True))
    # drop: close the connection with no answer at all.
    if request.transport is not None:
        request.transport.close()
    raise asyncio.CancelledError


# --------------------------------------------------------------------------- control


async def _objects(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]

    def listing() -> list[dict[str, Any]]:
        result = []
        for o in sim.store.all():
            entry: dict[str, Any] = {
                "address": o.address,
                "objclass": o.objclass,
                "parent": o.parent,
                "objname": o.objname,
                "fields": o.fields,
                "userforms": o.userforms,
            }
            if o.objclass == names.INHALT:
                content = sim.store.content(o.address) or b""
                entry["size"] = len(content)
                entry["sha256"] = hashlib.sha256(content).hexdigest()
            result.append(entry)
        return result

    return web.json_response(await asyncio.to_thread(listing))


async def _calls(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    return web.json_response({"calls": list(sim.calls), "in_flight": sim.in_flight})


async def _add_fault(request: web.Request) -> web.Response:
    try:
        rule = FaultRule.model_validate(await request.json())
    except (ValueError, ValidationError) as exc:
        return web.json_response({"error": str(exc)}, status=422)
    request.app[SIMULATOR].faults.add(rule)
    return web.json_response(rule.model_dump(), status=201)


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[SIMULATOR].faults.clear()
    return web.Response(status=204)


async def _add_aktenplan(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    try:
        name = str((await request.json())["name"])
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": 'send {"name": "…"}'}, status=422)
    address = await asyncio.to_thread(aktenplaneintrag, sim.store, name)
    return web.json_response({"name": name, "address": address})
