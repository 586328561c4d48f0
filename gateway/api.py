"""The HTTP API (aiohttp): partners hand in messages and ask where they stand.

``create_api(config, journal, blobs)`` builds the application; tests call it
directly, ``gateway.app`` serves it. The journal and blob store belong to the
caller, which opens and closes them (the API only borrows them). Endpoints (see
``docs/openapi.yaml``)::

    POST /v1/messages                  hand in a container or bare XML  → 202 / 200 duplicate
    GET  /v1/messages?state=&partner=  list messages, newest first
    GET  /v1/messages/{id}             one message: deliveries, attempts, last error
    POST /v1/messages/{id}/retry       replay its dead-lettered deliveries → 202
    GET  /v1/processes/{prozess_id}    one ProzessID: derived state, timeline, messages
    POST /v1/abgaben                   operator: export an Akte and send it → 202 / 200 open
    GET  /v1/health                    200 while the journal answers (no token needed)

Every endpoint but health needs a configured partner's credentials: its bearer
token (``Authorization: Bearer <token>``), its client certificate (mutual TLS,
``[http.tls]``), or both; see ``authenticate``. ``POST /v1/abgaben`` is the
node's operator's alone (the ``[operator]`` token; no partner credential counts),
and the operator may also read any process. Every error is an RFC 9457 problem
document (``application/problem+json``); unexpected exceptions become a generic
500 and are logged, never shown.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import timedelta

import structlog
from aiohttp import ClientPayloadError, hdrs, web
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ValidationError

from adapters.xdomea.container import ContainerLimits
from contracts.api import (
    AbgabeRequest,
    Health,
    MessageList,
    MessageQuery,
    MessageResponse,
    Problem,
    ProcessResponse,
    RetryResponse,
    SubmitResponse,
)
from contracts.config import GatewayConfig, PartnerConfig
from contracts.dms import DmsPort
from contracts.journal import MessageView
from contracts.xdomea import Finding
from gateway import abgabe, processes, tls
from gateway.blobs import BlobStore
from gateway.config import is_operator_token, partner_for_token
from gateway.errors import (
    AbgabeError,
    IdempotencyConflict,
    IntakeRejected,
    JournalUnavailable,
    NotFound,
)
from gateway.intake import Intake, Submission
from gateway.journal.store import Journal

log = structlog.get_logger(__name__)

CONFIG = web.AppKey("config", GatewayConfig)
JOURNAL = web.AppKey("journal", Journal)
INTAKE = web.AppKey("intake", Intake)
BLOBS = web.AppKey("blobs", BlobStore)
#: This node's own DMS (``[dms]``), when configured: ``POST /v1/abgaben`` exports from it.
DMS = web.AppKey("dms", DmsPort)
#: The partner the request's bearer token belongs to (set for every non-public route
#: the operator does not call).
PARTNER = web.RequestKey("partner", PartnerConfig)
#: Set when the node's operator (``[operator]`` token) makes the request.
OPERATOR = web.RequestKey("operator", bool)

#: Media types ``POST /v1/messages`` takes; the content itself decides ZIP or XML.
MEDIA_TYPES = frozenset({"application/zip", "application/xml", "text/xml"})
PROBLEM_JSON = "application/problem+json"
#: How long a client should wait before retrying while the journal is unreachable.
RETRY_AFTER_SECONDS = 10
#: Routes without bearer-token checks: load balancers probe health without a token, and
#: the XTA 2 service (``gateway/xta.py``) authenticates its SOAP callers itself.
PUBLIC_ROUTES = frozenset({"health", "xta"})
#: Routes only the node's operator may call.
OPERATOR_ROUTES = frozenset({"abgaben"})
#: Routes the operator may call besides its own (it sees every process).
OPERATOR_READABLE = frozenset({"process"})

_CHUNK = 256 * 1024
_REALM = 'Bearer realm="ikz-gateway"'


class ApiProblem(Exception):
    """A problem a handler or middleware raises; ``problems`` renders it as problem+json."""

    def __init__(
        self,
        status: int,
        kind: str,
        title: str,
        detail: str,
        *,
        findings: Sequence[Finding] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.title = title
        self.detail = detail
        self.findings = tuple(findings)
        self.headers = dict(headers or {})

    def response(self, request: web.Request) -> web.Response:
        """The problem document for ``request``."""
        document = Problem(
            type=Problem.type_for(self.kind),
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=request.path,
            findings=self.findings or None,
        )
        return web.json_response(
            text=document.model_dump_json(exclude={"findings"} if not self.findings else None),
            status=self.status,
            headers=self.headers,
            content_type=PROBLEM_JSON,
        )


def create_api(
    config: GatewayConfig,
    journal: Journal,
    blobs: BlobStore,
    *,
    limits: ContainerLimits | None = None,
    intake: Intake | None = None,
    dms: DmsPort | None = None,
) -> web.Application:
    """The API application over an open journal and blob store (which the caller owns).

    Args:
        config: the gateway configuration (partners, routes, ``[http]`` limits).
        journal: an upgraded journal.
        blobs: the blob store intake writes to.
        limits: container limits for intake checks; the defaults otherwise.
        intake: the intake to use, when the process shares one (drop folders, worker
            notification); by default one over ``journal`` and ``blobs`` with ``limits``.
        dms: this node's DMS (``[dms]``), which the caller opens and closes.
    """
    app = web.Application(middlewares=[problems, authenticate])
    app[CONFIG] = config
    app[JOURNAL] = journal
    app[BLOBS] = blobs
    app[INTAKE] = intake or Intake(config, journal, blobs, limits=limits)
    if dms is not None:
        app[DMS] = dms
    messages = app.router.add_resource("/v1/messages", name="messages")
    messages.add_route("POST", submit_message)
    messages.add_route("GET", list_messages)
    app.router.add_get("/v1/messages/{id}", get_message, name="message")
    app.router.add_post("/v1/messages/{id}/retry", retry_message, name="retry")
    app.router.add_get("/v1/processes/{prozess_id}", get_process, name="process")
    app.router.add_post("/v1/abgaben", start_abgabe, name="abgaben")
    app.router.add_get("/v1/health", health, name="health")
    return app


# ---------------------------------------------------------------------- middlewares


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error as problem+json; unexpected exceptions as a generic 500."""
    try:
        return await handler(request)
    except Exception as exc:
        if isinstance(exc, web.HTTPException) and exc.status < 400:
            raise  # redirects are not errors
        problem = _as_problem(exc, request)
    log.info(
        "request_refused",
        status=problem.status,
        reason=problem.kind,
        method=request.method,
        path=request.path,
    )
    return problem.response(request)


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require a partner's credentials on every route but the public ones.

    A client certificate bound to a partner (``certificate_sha256`` or
    ``certificate_san``) and a bearer token both name a partner. The rules:

    * every credential presented must be valid: an unknown token is 401, a
      certificate (already verified against ``client_ca``) bound to no partner is 403;
    * a certificate and a token that name different partners are refused (401);
    * every credential configured for the partner must be presented: a partner
      bound to a certificate cannot authenticate with its token alone, and one
      with a token cannot authenticate with its certificate alone.
    """
    match = request.match_info
    if match.http_exception is not None or match.route.name in PUBLIC_ROUTES:
        return await handler(request)  # unknown paths answer 404/405, not 401
    route = match.route.name
    if route in OPERATOR_ROUTES | OPERATOR_READABLE and _is_operator(request):
        request[OPERATOR] = True
        with structlog.contextvars.bound_contextvars(operator=True):
            return await handler(request)
    if route in OPERATOR_ROUTES:
        _refuse_non_operator(request)
    certificate = tls.peer_certificate(request.transport)
    partner = _partner(request, certificate)
    request[PARTNER] = partner
    fields = {"partner": partner.id}
    if certificate is not None:
        fields["client_certificate"] = certificate.fingerprint
    with structlog.contextvars.bound_contextvars(**fields):
        return await handler(request)


def _partner(request: web.Request, certificate: tls.PeerCertificate | None) -> PartnerConfig:
    """The partner the request's credentials authenticate (rules: ``authenticate``)."""
    config = request.app[CONFIG]
    by_certificate = _certificate_partner(config, certificate) if certificate else None
    header = request.headers.get(hdrs.AUTHORIZATION)
    by_token = _token_partner(config, header) if header is not None else None
    if certificate and by_certificate and by_token and by_token.id != by_certificate.id:
        log.warning(
            "credentials_mismatch",
            certificate_partner=by_certificate.id,
            token_partner=by_token.id,
            fingerprint=certificate.fingerprint,
            subject=certificate.subject,
        )
        raise _unauthorized(
            f"the client certificate belongs to partner {by_certificate.id}, but the "
            "bearer token to another partner; send the token that belongs to this "
            "certificate"
        )
    partner = by_certificate or by_token
    if partner is None:
        raise _unauthorized(
            "send the credentials this gateway's operator agreed with you: the bearer token "
            "as 'Authorization: Bearer <token>', and the client certificate if one is bound",
            error=None,
        )
    if partner.certificate_bound and by_certificate is None:
        raise _unauthorized(
            f"partner {partner.id} must present its client certificate (mutual TLS); a "
            "bearer token alone is not enough",
            error=None,
        )
    if partner.has_token and by_token is None:
        raise _unauthorized(
            f"partner {partner.id} must also send its bearer token as "
            "'Authorization: Bearer <token>'",
            error=None,
        )
    return partner


def _is_operator(request: web.Request) -> bool:
    """Whether the request carries the ``[operator]`` bearer token."""
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    token = token.strip()
    return (
        scheme.lower() == "bearer" and bool(token) and is_operator_token(request.app[CONFIG], token)
    )


def _refuse_non_operator(request: web.Request) -> None:
    """Refuse an operator route to anyone else: 401 without a token, 403 with another one."""
    if request.app[CONFIG].operator is None:
        raise ApiProblem(
            403,
            "operator-only",
            "Only this gateway's operator may do this",
            "this gateway has no [operator] token, so Abgaben are started with "
            "'ikz-gateway abgabe start' on the gateway's host; add [operator] to allow the API",
        )
    if hdrs.AUTHORIZATION not in request.headers:
        raise _unauthorized(
            "send this gateway's operator token as 'Authorization: Bearer <token>'", error=None
        )
    log.warning("operator_route_refused", path=request.path)
    raise ApiProblem(
        403,
        "operator-only",
        "Only this gateway's operator may do this",
        "starting an Abgabe exports an Akte from this Kommune's DMS, which only its operator "
        "may do; partners' credentials are not accepted here",
    )


def _certificate_partner(config: GatewayConfig, certificate: tls.PeerCertificate) -> PartnerConfig:
    """The one partner bound to a verified client certificate; 403 for none or several."""
    partners = tls.partners_for_certificate(config, certificate)
    if len(partners) == 1:
        return partners[0]
    log.warning(
        "client_certificate_refused",
        reason="bound to several partners" if partners else "bound to no partner",
        partners=[p.id for p in partners],
        fingerprint=certificate.fingerprint,
        subject=certificate.subject,
    )
    raise ApiProblem(
        403,
        "certificate-not-bound",
        "Client certificate not bound to one partner",
        f"the client certificate {certificate.subject} (SHA-256 {certificate.fingerprint}) "
        + (
            "is bound to more than one partner of this gateway; the operator must fix the bindings"
            if partners
            else "is not bound to any partner of this gateway; ask its operator to add its "
            "fingerprint as certificate_sha256 to your partner entry"
        ),
    )


def _token_partner(config: GatewayConfig, header: str) -> PartnerConfig:
    """The partner of a bearer token; 401 for anything else in the Authorization header."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    partner = partner_for_token(config, token) if scheme.lower() == "bearer" and token else None
    if partner is None:
        raise _unauthorized(
            "the Authorization header does not carry a valid bearer token of a partner of "
            "this gateway; check the token, or ask the operator for one"
        )
    return partner


def _unauthorized(detail: str, *, error: str | None = "invalid_token") -> ApiProblem:
    """A 401 problem with the ``WWW-Authenticate`` challenge (RFC 6750)."""
    challenge = f'{_REALM}, error="{error}"' if error else _REALM
    return ApiProblem(
        401,
        "unauthorized",
        "Authentication required",
        detail,
        headers={hdrs.WWW_AUTHENTICATE: challenge},
    )


def _as_problem(exc: Exception, request: web.Request) -> ApiProblem:
    """The problem an exception stands for."""
    if isinstance(exc, ApiProblem):
        return exc
    if isinstance(exc, IntakeRejected):
        return ApiProblem(exc.status, exc.kind, exc.title, exc.message, findings=exc.findings)
    if isinstance(exc, AbgabeError):
        return ApiProblem(exc.status, exc.kind, "The Abgabe cannot be started", exc.message)
    if isinstance(exc, NotFound):
        return ApiProblem(404, exc.kind, "Not found", exc.message)
    if isinstance(exc, IdempotencyConflict):
        return ApiProblem(422, exc.kind, "Idempotency-Key reused for different content", str(exc))
    if isinstance(exc, JournalUnavailable):
        log.warning("journal_unavailable", error=exc.message)
        return ApiProblem(
            503,
            exc.kind,
            "Journal unavailable",
            "the gateway cannot reach its journal right now; nothing was accepted. "
            f"Try again in {RETRY_AFTER_SECONDS} seconds",
            headers={hdrs.RETRY_AFTER: str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, web.HTTPException):
        return _routing_problem(exc, request)
    log.exception("request_failed", method=request.method, path=request.path)
    return ApiProblem(
        500,
        "internal-error",
        "Internal error",
        "the gateway failed to handle this request; the operator finds the cause in its log",
    )


def _routing_problem(exc: web.HTTPException, request: web.Request) -> ApiProblem:
    """aiohttp's own errors (no such path, method not allowed) as problems."""
    headers = {k: v for k, v in exc.headers.items() if k != hdrs.CONTENT_TYPE}
    if exc.status == 404:
        detail = f"there is no endpoint {request.path}; docs/openapi.yaml lists them"
        return ApiProblem(404, "not-found", "Not found", detail, headers=headers)
    if exc.status == 405:
        allowed = exc.headers.get(hdrs.ALLOW, "")
        detail = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
        return ApiProblem(405, "method-not-allowed", exc.reason, detail, headers=headers)
    return ApiProblem(exc.status, f"http-{exc.status}", exc.reason, exc.reason, headers=headers)


# ---------------------------------------------------------------------- handlers


async def submit_message(request: web.Request) -> web.Response:
    """``POST /v1/messages``: stream the body into intake; answer after the journal commit.

    A message accepted before (same Idempotency-Key, or same ProzessID, Nachrichtentyp,
    Absender and bytes) answers 200 with its existing id and ``duplicate: true``, so a
    client that lost the first answer can tell "already there" from "new".
    """
    limit = request.app[CONFIG].http.max_body_bytes
    if request.content_type not in MEDIA_TYPES:
        raise ApiProblem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"Content-Type {request.content_type} is not accepted; send a container as "
            "application/zip or a bare message as application/xml",
            headers={"Accept-Post": ", ".join(sorted(MEDIA_TYPES))},
        )
    if request.content_length is not None and request.content_length > limit:
        raise ApiProblem(
            413,
            "too-large",
            "Content too large",
            f"Content-Length {request.content_length} exceeds this gateway's limit of "
            f"{limit} bytes; send a smaller container or ask the operator to raise the limit",
        )
    submission = Submission(
        partner=request[PARTNER],
        channel="http",
        idempotency_key=request.headers.get("Idempotency-Key"),
        file_name=_file_name(request),
    )
    try:
        accepted = await request.app[INTAKE].submit(
            request.content.iter_chunked(_CHUNK), submission, max_bytes=limit
        )
    except (ClientPayloadError, ConnectionResetError) as exc:
        raise ApiProblem(
            400,
            "incomplete-upload",
            "Incomplete upload",
            "the request body ended before it was complete; nothing was accepted, send it again",
        ) from exc
    status_url = _message_url(request, accepted.message_id)
    answer = SubmitResponse(
        id=accepted.message_id, status_url=status_url, duplicate=accepted.duplicate
    )
    return _json(answer, status=200 if accepted.duplicate else 202, location=status_url)


async def list_messages(request: web.Request) -> web.Response:
    """``GET /v1/messages``: newest first, filtered by state and sending partner."""
    try:
        query = MessageQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        problems_ = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ApiProblem(400, "invalid-query", "Invalid query", problems_) from exc
    partner = request[PARTNER]
    views = await request.app[JOURNAL].list_messages(
        state=query.state,
        partner=query.partner,
        visible_to=(partner.id, partner.behoerdenkennung),
        limit=query.limit,
        offset=query.offset,
    )
    return _json(MessageList(messages=tuple(views), limit=query.limit, offset=query.offset))


async def get_message(request: web.Request) -> web.Response:
    """``GET /v1/messages/{id}``: state, deliveries with their attempts, last error, and
    the receipts this gateway owes for it (overdue ones flagged)."""
    message_id = request.match_info["id"]
    journal = request.app[JOURNAL]
    view = await journal.get_message(message_id)
    if not _visible(view, request[PARTNER]):
        raise NotFound(f"no message {message_id}")
    timeout = timedelta(seconds=request.app[CONFIG].processes.receipt_timeout_seconds)
    owed = await journal.receipts_owed([message_id], timeout=timeout)
    return _json(MessageResponse(**dict(view), receipts=tuple(owed)))


async def retry_message(request: web.Request) -> web.Response:
    """``POST /v1/messages/{id}/retry``: put dead-lettered deliveries back in the queue."""
    message_id = request.match_info["id"]
    journal = request.app[JOURNAL]
    if (await journal.get_message(message_id)).partner_id != request[PARTNER].id:
        # Only the sender decides whether its message is sent again.
        raise NotFound(f"no message {message_id}")
    replayed = await journal.replay(message_id)
    status_url = _message_url(request, message_id)
    if replayed == 0:
        raise ApiProblem(
            409,
            "nothing-to-retry",
            "Nothing to retry",
            f"message {message_id} has no dead-lettered delivery; {status_url} shows its state",
        )
    log.info("message_replayed", message_id=message_id, deliveries=replayed)
    answer = RetryResponse(id=message_id, replayed=replayed, status_url=status_url)
    return _json(answer, status=202, location=status_url)


async def get_process(request: web.Request) -> web.Response:
    """``GET /v1/processes/{prozess_id}``: every message of one ProzessID, oldest first.

    A partner sees the messages it may see (``_visible``) and the state derived from
    them only; the operator sees all, with the Abgabe record (DMS address, completion
    action) when the process was started with ``abgabe start`` and the DMS objects
    this gateway's ``dms`` destinations filed.
    """
    prozess_id = request.match_info["prozess_id"]
    operator = request.get(OPERATOR, False)
    journal = request.app[JOURNAL]
    views = await journal.process(prozess_id)
    if not operator:
        views = [v for v in views if _visible(v, request[PARTNER])]
    if not views:
        raise ApiProblem(404, "not-found", "Not found", f"no message with ProzessID {prozess_id}")
    config = request.app[CONFIG]
    # Derived from what this partner may see only, so it learns nothing more.
    status = await processes.status(config, journal, request.app[BLOBS], prozess_id, views)
    if not operator:
        # DMS addresses describe this Kommune's filing; the 0402 already tells the
        # sender what was imported, so a partner sees no DMS objects.
        status = status.model_copy(update={"abgabe": None, "dms_objects": ()})
    return _json(ProcessResponse(**dict(status), messages=tuple(views)))


async def start_abgabe(request: web.Request) -> web.Response:
    """``POST /v1/abgaben``: export an Akte from this node's DMS and send it (operator only).

    202 when the Abgabe was started, 200 (``existing: true``) when it was open already.
    """
    try:
        body = AbgabeRequest.model_validate_json(await request.read())
    except ValidationError as exc:
        problems_ = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ApiProblem(
            400,
            "invalid-request",
            "Invalid request",
            f'send JSON {{"akte": "DMS address", "to": "partner"}}: {problems_}',
        ) from exc
    from gateway.app import local_sender  # the app module builds this API

    config = request.app[CONFIG]
    abgabe.check_startable(config, body.to)
    started = await abgabe.start(
        config,
        request.app[JOURNAL],
        request.app[INTAKE],
        request.app[DMS],
        local_sender(config),
        akte=body.akte,
        to=body.to,
    )
    status_url = _process_url(request, started.abgabe.prozess_id)
    answer = abgabe.response(started, status_url)
    return _json(answer, status=200 if started.existing else 202, location=status_url)


async def health(request: web.Request) -> web.Response:
    """``GET /v1/health``: 200 while the journal answers, 503 (problem) otherwise."""
    await request.app[JOURNAL].counts()
    return _json(Health())


# ---------------------------------------------------------------------- helpers


def _visible(view: MessageView, partner: PartnerConfig) -> bool:
    """A partner sees what it sent and what names it as Absender or Empfänger, nothing else.

    Other partners' messages are answered 404, as if they did not exist: a Kommune
    must not learn from this gateway which cases another Kommune sends where.
    """
    kennung = partner.behoerdenkennung
    return view.partner_id == partner.id or kennung in (view.absender, view.empfaenger)


def _json(body: BaseModel, *, status: int = 200, location: str | None = None) -> web.Response:
    headers = {hdrs.LOCATION: location} if location else None
    return web.json_response(text=body.model_dump_json(), status=status, headers=headers)


def _message_url(request: web.Request, message_id: str) -> str:
    """Absolute URL of a message: under ``[http] public_url`` if set, else as requested."""
    path = str(request.app.router["message"].url_for(id=message_id))
    base = request.app[CONFIG].http.public_url
    return (base.rstrip("/") if base else str(request.url.origin())) + path


def _process_url(request: web.Request, prozess_id: str) -> str:
    """Absolute URL of a process, like ``_message_url``."""
    path = str(request.app.router["process"].url_for(prozess_id=prozess_id))
    base = request.app[CONFIG].http.public_url
    return (base.rstrip("/") if base else str(request.url.origin())) + path


def _file_name(request: web.Request) -> str | None:
    """The original file name: ``X-File-Name`` (percent-encoded UTF-8) or Content-Disposition."""
    name = request.headers.get("X-File-Name")
    if name is not None:
        return urllib.parse.unquote(name)
    disposition = request.headers.get(hdrs.CONTENT_DISPOSITION)
    if disposition is None:
        return None
    _, params = parse_content_disposition(disposition)
    return content_disposition_filename(params, "filename")
