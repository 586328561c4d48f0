"""The HTTP API as a partner drives it: a real aiohttp server on loopback over the real stack.

Each test talks HTTP to ``create_api`` served by ``aiohttp.test_utils.TestServer``,
backed by a migrated SQLite journal and a blob store in the test's folder (the
intake tests in ``tests/integration/test_intake.py`` run both journal backends).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from contracts.config import GatewayConfig
from gateway.api import create_api
from gateway.blobs import BlobStore
from gateway.journal.store import Journal
from tests.intake_support import (
    KOMMUNE_C,
    NOBODY,
    TOKEN_A,
    TOKEN_C,
    bare_message,
    blob_files,
    chunks_of,
    container,
    gateway_config,
    message_of_unknown_version,
    schema_invalid_message,
)

PROZESS_ID = "0d9c8b7a-6f5e-4d3c-9b2a-1f0e9d8c7b6a"
Client = TestClient[Any, Any]


@pytest.fixture
def config(tmp_path: Path) -> GatewayConfig:
    """Kommune B's configuration."""
    return gateway_config(tmp_path)


@pytest.fixture
async def journal(config: GatewayConfig) -> AsyncIterator[Journal]:
    """A migrated SQLite journal in the test's folder."""
    store = Journal.from_url(config.storage.journal)
    await store.upgrade()
    yield store
    await store.close()


@pytest.fixture
def blobs(config: GatewayConfig) -> BlobStore:
    """The blob store in the test's folder."""
    return BlobStore(config.storage.blobs)


@pytest.fixture
async def client(
    config: GatewayConfig, journal: Journal, blobs: BlobStore
) -> AsyncIterator[Client]:
    """An HTTP client of the API served on loopback."""
    async with TestClient(TestServer(create_api(config, journal, blobs))) as client:
        yield client


async def submit(
    client: Client,
    data: Any,
    *,
    content_type: str = "application/xml",
    token: str | None = TOKEN_A,
    **headers: str,
) -> ClientResponse:
    """POST ``data`` to /v1/messages as a partner (Kommune A by default)."""
    headers = {"Content-Type": content_type, **headers}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await client.post("/v1/messages", data=data, headers=headers)


async def read(client: Client, path: str, *, token: str = TOKEN_A) -> ClientResponse:
    """GET ``path`` with a partner's token."""
    return await client.get(path, headers={"Authorization": f"Bearer {token}"})


async def problem(response: ClientResponse, status: int, kind: str) -> dict[str, Any]:
    """Check that ``response`` is an RFC 9457 problem document of that status and kind."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json(content_type="application/problem+json")
    assert body["type"] == f"urn:ikz-gateway:problem:{kind}"
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["instance"] == response.url.path
    return body


async def dead_letter_all(journal: Journal) -> None:
    """Drive every due delivery to dead, as a worker would after a permanent failure."""
    for claim in await journal.claim("test-worker", limit=100, lease=timedelta(minutes=1)):
        await journal.dead_letter(claim, "test-worker", "receiver answered 400")


# ---------------------------------------------------------------------- accepting


async def test_a_container_is_accepted_with_202_and_a_status_url(
    client: Client, tmp_path: Path
) -> None:
    """A valid container answers 202 with the message id and where to follow it."""
    response = await submit(client, container(tmp_path), content_type="application/zip")

    assert response.status == 202
    body = await response.json()
    assert body["duplicate"] is False
    assert body["status_url"] == str(client.make_url(f"/v1/messages/{body['id']}"))
    assert response.headers["Location"] == body["status_url"]


async def test_an_accepted_message_shows_its_pending_delivery(
    client: Client, tmp_path: Path
) -> None:
    """The status URL shows the message accepted, with one pending delivery per route."""
    accepted = await (
        await submit(
            client, container(tmp_path, prozess_id=PROZESS_ID), content_type="application/zip"
        )
    ).json()

    response = await read(client, f"/v1/messages/{accepted['id']}")

    assert response.status == 200
    view = await response.json()
    assert (view["state"], view["prozess_id"], view["partner_id"]) == (
        "accepted",
        PROZESS_ID,
        "kommune-a",
    )
    assert [(d["destination"], d["state"], d["attempts"]) for d in view["deliveries"]] == [
        ("dms", "pending", 0)
    ]


@pytest.mark.parametrize("content_type", ["application/xml", "text/xml"])
async def test_a_bare_message_xml_is_accepted(client: Client, content_type: str) -> None:
    """A message without documents may come as bare XML under either XML media type."""
    response = await submit(client, bare_message(), content_type=content_type)

    assert response.status == 202


async def test_the_same_idempotency_key_twice_yields_one_message(client: Client) -> None:
    """A repeat with the same Idempotency-Key answers 200 with the first id and duplicate true."""
    data = bare_message()
    first = await (await submit(client, data, **{"Idempotency-Key": "abgabe-42"})).json()

    again = await submit(client, data, **{"Idempotency-Key": "abgabe-42"})

    assert again.status == 200
    assert await again.json() == {**first, "duplicate": True}
    assert len((await (await read(client, "/v1/messages")).json())["messages"]) == 1


async def test_the_same_message_twice_without_a_key_yields_one_message(client: Client) -> None:
    """Identical bytes with the same ProzessID, type and Absender are accepted once."""
    data = bare_message()
    first = await (await submit(client, data)).json()

    again = await submit(client, data)

    assert again.status == 200
    assert (await again.json())["id"] == first["id"]


async def test_an_idempotency_key_reused_for_other_content_is_422(client: Client) -> None:
    """Another body under a used Idempotency-Key is refused, not silently mapped to the first."""
    await submit(client, bare_message(), **{"Idempotency-Key": "abgabe-42"})

    response = await submit(client, bare_message(), **{"Idempotency-Key": "abgabe-42"})

    body = await problem(response, 422, "idempotency-conflict")
    assert "abgabe-42" in body["detail"]


async def test_an_overlong_idempotency_key_is_400(client: Client) -> None:
    """An Idempotency-Key longer than 200 characters is refused."""
    response = await submit(client, bare_message(), **{"Idempotency-Key": "k" * 201})

    await problem(response, 400, "bad-idempotency-key")


@pytest.mark.parametrize(
    ("header", "value", "kept"),
    [
        ("X-File-Name", "Bauantrag%20M%C3%BCller.xml", "Bauantrag Müller.xml"),
        ("Content-Disposition", 'attachment; filename="abgabe.xml"', "abgabe.xml"),
    ],
)
async def test_the_original_file_name_is_kept(
    client: Client, header: str, value: str, kept: str
) -> None:
    """The sender's file name comes from X-File-Name (percent-encoded) or Content-Disposition."""
    accepted = await (await submit(client, bare_message(), **{header: value})).json()

    view = await (await read(client, f"/v1/messages/{accepted['id']}")).json()

    assert view["file_name"] == kept


# ---------------------------------------------------------------------- refusing


async def test_an_unknown_empfaenger_is_422_and_nothing_is_kept(
    client: Client, config: GatewayConfig, tmp_path: Path
) -> None:
    """A message for an Empfänger without a route is refused; no message and no blob remain."""
    data = container(tmp_path, empfaenger=NOBODY)

    response = await submit(client, data, content_type="application/zip")

    await problem(response, 422, "unroutable")
    assert (await (await read(client, "/v1/messages")).json())["messages"] == []
    assert blob_files(config.storage.blobs) == []


async def test_a_partner_cannot_send_as_another_behoerdenkennung(client: Client) -> None:
    """Kommune C's token with Kommune A as Absender is 403."""
    response = await submit(client, bare_message(), token=TOKEN_C)

    body = await problem(response, 403, "wrong-sender")
    assert "060:0815" in body["detail"]


async def test_a_request_without_a_token_is_401(client: Client) -> None:
    """No Authorization header: 401 with a Bearer challenge."""
    response = await submit(client, bare_message(), token=None)

    await problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="ikz-gateway"'


async def test_an_unknown_token_is_401(client: Client) -> None:
    """A token no partner has: 401 with error=invalid_token."""
    response = await submit(client, bare_message(), token="guessed")

    await problem(response, 401, "unauthorized")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_another_authorization_scheme_is_401(client: Client) -> None:
    """Basic credentials are no bearer token."""
    response = await client.post(
        "/v1/messages",
        data=bare_message(),
        headers={"Content-Type": "application/xml", "Authorization": "Basic a29tbXVuZTpz"},
    )

    await problem(response, 401, "unauthorized")


async def test_read_endpoints_need_a_token(client: Client) -> None:
    """Listing messages without a token is 401."""
    response = await client.get("/v1/messages")

    await problem(response, 401, "unauthorized")


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream"])
async def test_a_wrong_media_type_is_415(client: Client, content_type: str) -> None:
    """Only application/zip, application/xml and text/xml are taken."""
    response = await submit(client, bare_message(), content_type=content_type)

    await problem(response, 415, "unsupported-media-type")
    assert "application/zip" in response.headers["Accept-Post"]


async def test_a_too_large_content_length_is_refused_with_413(
    config: GatewayConfig, journal: Journal, blobs: BlobStore
) -> None:
    """A declared Content-Length over [http] max_body_bytes is refused before reading; nothing is kept."""
    small = gateway_config(config.storage.blobs.parent, max_body_bytes=1000)
    async with TestClient(TestServer(create_api(small, journal, blobs))) as client:
        response = await submit(client, bare_message())

        body = await problem(response, 413, "too-large")
    assert "Content-Length" in body["detail"]
    assert blob_files(blobs.root) == []


async def test_a_streamed_body_over_the_limit_is_refused_with_413(
    config: GatewayConfig, journal: Journal, blobs: BlobStore
) -> None:
    """A chunked body without Content-Length is cut off at the limit; the partial upload is gone."""
    small = gateway_config(config.storage.blobs.parent, max_body_bytes=1000)
    async with TestClient(TestServer(create_api(small, journal, blobs))) as client:
        response = await submit(client, chunks_of(bare_message(), 256))

        body = await problem(response, 413, "too-large")
    assert "1000 bytes" in body["detail"]
    assert blob_files(blobs.root) == []


async def test_malformed_xml_is_400(client: Client) -> None:
    """XML that is not well-formed is a 400 naming the line."""
    response = await submit(client, b"<xdomea:Abgabe.Abgabe.0401>\n<unclosed>")

    body = await problem(response, 400, "malformed-xml")
    assert "line" in body["detail"]


async def test_a_broken_zip_is_400(client: Client) -> None:
    """A body that starts like a ZIP but is none is a 400."""
    response = await submit(client, b"PK\x03\x04 not really", content_type="application/zip")

    await problem(response, 400, "container-error")


async def test_a_schema_invalid_message_is_422_with_findings(client: Client) -> None:
    """Schema errors come back as findings with line, element path and message."""
    response = await submit(client, schema_invalid_message())

    body = await problem(response, 422, "invalid-message")
    (finding,) = body["findings"]
    assert finding["line"] == 8
    assert finding["path"].endswith("/xdomea:Kopf/xdomea:Erstellungszeitpunkt")
    assert "gestern" in finding["message"]
    assert finding["severity"] == "error"


async def test_an_unsupported_xdomea_version_is_422(client: Client) -> None:
    """A namespace of an unknown xdomea version is refused with 422."""
    response = await submit(client, message_of_unknown_version())

    await problem(response, 422, "unsupported-version")


async def test_a_version_not_agreed_with_the_partner_is_422(client: Client) -> None:
    """Kommune C agreed on 3.1.0 only; its 3.0.0 message is refused."""
    response = await submit(client, bare_message("3.0.0", absender=KOMMUNE_C), token=TOKEN_C)

    await problem(response, 422, "version-not-agreed")


# ---------------------------------------------------------------------- journal down


@pytest.fixture
async def cut_off(config: GatewayConfig, blobs: BlobStore) -> AsyncIterator[Client]:
    """A client of an API whose journal (a PostgreSQL nobody listens for) cannot be reached."""
    journal = Journal.from_url("postgresql://nobody@127.0.0.1:1/unreachable")
    async with TestClient(TestServer(create_api(config, journal, blobs))) as client:
        yield client
    await journal.close()


async def test_an_unreachable_journal_answers_503_and_accepts_nothing(cut_off: Client) -> None:
    """Without the journal a submission is 503 with Retry-After, never 202."""
    response = await submit(cut_off, bare_message())

    body = await problem(response, 503, "journal-unavailable")
    assert response.headers["Retry-After"] == "10"
    assert "nothing was accepted" in body["detail"]


async def test_health_is_503_while_the_journal_is_unreachable(cut_off: Client) -> None:
    """The health check fails when the journal does not answer."""
    response = await cut_off.get("/v1/health")

    await problem(response, 503, "journal-unavailable")


async def test_health_is_200_without_a_token_while_the_journal_answers(client: Client) -> None:
    """Load balancers probe health without credentials."""
    response = await client.get("/v1/health")

    assert response.status == 200
    assert await response.json() == {"status": "ok"}


# ---------------------------------------------------------------------- reading


async def test_messages_are_listed_by_state(client: Client, journal: Journal) -> None:
    """state=dead lists only messages with a dead-lettered delivery, state=accepted the others."""
    dead = await (await submit(client, bare_message())).json()
    await dead_letter_all(journal)
    open_ = await (await submit(client, bare_message())).json()

    dead_list = await (await read(client, "/v1/messages?state=dead")).json()
    open_list = await (await read(client, "/v1/messages?state=accepted")).json()

    assert [m["id"] for m in dead_list["messages"]] == [dead["id"]]
    assert [m["id"] for m in open_list["messages"]] == [open_["id"]]


async def test_messages_are_listed_by_partner(client: Client) -> None:
    """partner=… narrows the list to what that partner sent."""
    to_c = await (await submit(client, bare_message(empfaenger=KOMMUNE_C))).json()
    from_c = await (await submit(client, bare_message(absender=KOMMUNE_C), token=TOKEN_C)).json()

    everything = await (await read(client, "/v1/messages", token=TOKEN_C)).json()
    listed = await (await read(client, "/v1/messages?partner=kommune-c", token=TOKEN_C)).json()

    assert {m["id"] for m in everything["messages"]} == {to_c["id"], from_c["id"]}
    assert [m["id"] for m in listed["messages"]] == [from_c["id"]]


# ---------------------------------------------------------------------- who sees what


async def test_a_partner_lists_only_messages_it_sent_or_is_named_in(client: Client) -> None:
    """Kommune C's list holds C's message, not Kommune A's (which does not name C)."""
    from_a = await (await submit(client, bare_message())).json()
    from_c = await (await submit(client, bare_message(absender=KOMMUNE_C), token=TOKEN_C)).json()

    seen_by_c = await (await read(client, "/v1/messages", token=TOKEN_C)).json()
    asked_for_a = await (await read(client, "/v1/messages?partner=kommune-a", token=TOKEN_C)).json()

    assert [m["id"] for m in seen_by_c["messages"]] == [from_c["id"]]
    assert asked_for_a["messages"] == []
    assert from_a["id"] not in [m["id"] for m in seen_by_c["messages"]]


async def test_another_partners_message_is_404(client: Client) -> None:
    """Kommune C cannot read Kommune A's message; it is answered as if it did not exist."""
    from_a = await (await submit(client, bare_message())).json()

    response = await read(client, f"/v1/messages/{from_a['id']}", token=TOKEN_C)

    await problem(response, 404, "not-found")


async def test_the_empfaenger_partner_sees_a_message_addressed_to_it(client: Client) -> None:
    """A message whose Empfänger is Kommune C is visible to C, though A sent it."""
    to_c = await (await submit(client, bare_message(empfaenger=KOMMUNE_C))).json()

    response = await read(client, f"/v1/messages/{to_c['id']}", token=TOKEN_C)

    assert response.status == 200
    assert (await response.json())["partner_id"] == "kommune-a"


async def test_the_process_view_hides_another_partners_messages(client: Client) -> None:
    """Kommune C gets 404 for a ProzessID only Kommune A's messages carry."""
    await submit(client, bare_message(prozess_id=PROZESS_ID))

    response = await read(client, f"/v1/processes/{PROZESS_ID}", token=TOKEN_C)

    await problem(response, 404, "not-found")


async def test_a_partner_cannot_retry_another_partners_message(
    client: Client, journal: Journal
) -> None:
    """Only the sender may put its dead-lettered message back in the queue."""
    from_a = await (await submit(client, bare_message())).json()
    await dead_letter_all(journal)

    response = await client.post(
        f"/v1/messages/{from_a['id']}/retry", headers={"Authorization": f"Bearer {TOKEN_C}"}
    )

    await problem(response, 404, "not-found")
    assert (await journal.get_message(from_a["id"])).state == "dead"


async def test_the_list_is_paged_newest_first(client: Client) -> None:
    """limit and offset page through the messages, newest first."""
    ids = [(await (await submit(client, bare_message())).json())["id"] for _ in range(3)]

    page = await (await read(client, "/v1/messages?limit=2&offset=1")).json()

    assert (page["limit"], page["offset"]) == (2, 1)
    assert [m["id"] for m in page["messages"]] == [ids[1], ids[0]]


@pytest.mark.parametrize(
    "query", ["state=lost", "limit=0", "limit=many", "offset=-1", "colour=red"]
)
async def test_an_invalid_list_query_is_400(client: Client, query: str) -> None:
    """Unknown states, out-of-range paging and unknown parameters are refused."""
    response = await read(client, f"/v1/messages?{query}")

    await problem(response, 400, "invalid-query")


async def test_an_unknown_message_is_404(client: Client) -> None:
    """A message id the journal does not know is a 404 problem."""
    response = await read(client, "/v1/messages/00000000-0000-4000-8000-000000000000")

    await problem(response, 404, "not-found")


async def test_the_process_view_lists_every_message_of_a_prozess_id(client: Client) -> None:
    """Two messages of one ProzessID are listed under it, oldest first."""
    first = await (await submit(client, bare_message(prozess_id=PROZESS_ID))).json()
    second = await (
        await submit(client, bare_message(prozess_id=PROZESS_ID, hinweis="Nachtrag"))
    ).json()

    response = await read(client, f"/v1/processes/{PROZESS_ID.upper()}")

    assert response.status == 200
    body = await response.json()
    assert body["prozess_id"] == PROZESS_ID.upper()
    assert [m["id"] for m in body["messages"]] == [first["id"], second["id"]]


async def test_an_unknown_process_is_404(client: Client) -> None:
    """A ProzessID without messages is a 404 problem."""
    response = await read(client, f"/v1/processes/{PROZESS_ID}")

    await problem(response, 404, "not-found")


# ---------------------------------------------------------------------- retry


async def test_retry_puts_dead_deliveries_back_in_the_queue(
    client: Client, journal: Journal
) -> None:
    """A dead-lettered message answers 202 to retry and is pending again."""
    accepted = await (await submit(client, bare_message())).json()
    await dead_letter_all(journal)

    response = await client.post(
        f"/v1/messages/{accepted['id']}/retry", headers={"Authorization": f"Bearer {TOKEN_A}"}
    )

    assert response.status == 202
    assert (await response.json())["replayed"] == 1
    view = await (await read(client, f"/v1/messages/{accepted['id']}")).json()
    assert view["state"] == "accepted"
    assert [(d["state"], d["attempts"]) for d in view["deliveries"]] == [("pending", 0)]


async def test_a_dead_delivery_shows_its_attempt_and_last_error(
    client: Client, journal: Journal
) -> None:
    """The message view tells why a delivery is dead and lists its attempts."""
    accepted = await (await submit(client, bare_message())).json()
    await dead_letter_all(journal)

    view = await (await read(client, f"/v1/messages/{accepted['id']}")).json()

    (delivery,) = view["deliveries"]
    assert (view["state"], delivery["state"], delivery["last_error"]) == (
        "dead",
        "dead",
        "receiver answered 400",
    )
    assert [(a["number"], a["outcome"]) for a in delivery["history"]] == [(1, "permanent")]


async def test_retry_without_dead_deliveries_is_409(client: Client) -> None:
    """Nothing to replay is a conflict, not a silent success."""
    accepted = await (await submit(client, bare_message())).json()

    response = await client.post(
        f"/v1/messages/{accepted['id']}/retry", headers={"Authorization": f"Bearer {TOKEN_A}"}
    )

    await problem(response, 409, "nothing-to-retry")


async def test_retry_of_an_unknown_message_is_404(client: Client) -> None:
    """Retrying a message that does not exist is a 404 problem."""
    response = await client.post(
        "/v1/messages/nope/retry", headers={"Authorization": f"Bearer {TOKEN_A}"}
    )

    await problem(response, 404, "not-found")


# ---------------------------------------------------------------------- every error a problem


async def test_an_unknown_path_is_a_404_problem(client: Client) -> None:
    """Paths the API does not have answer with a problem document too."""
    response = await client.get("/v2/messages")

    await problem(response, 404, "not-found")


async def test_a_wrong_method_is_a_405_problem_with_allow(client: Client) -> None:
    """A method the path does not take answers 405 with the allowed methods."""
    response = await client.delete("/v1/messages", headers={"Authorization": f"Bearer {TOKEN_A}"})

    await problem(response, 405, "method-not-allowed")
    assert set(response.headers["Allow"].split(",")) >= {"GET", "POST"}


async def test_an_unexpected_error_is_a_generic_500_and_is_logged(
    client: Client, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception nobody expected answers a generic problem; the details go to the log only."""

    async def broken(message_id: str) -> None:
        raise RuntimeError("internal detail: /srv/secret/path")

    monkeypatch.setattr(journal, "get_message", broken)

    with capture_logs() as logs:
        response = await read(client, "/v1/messages/some-id")

    body = await problem(response, 500, "internal-error")
    assert "secret" not in str(body) and "Traceback" not in str(body)
    (event,) = [e for e in logs if e["event"] == "request_failed"]
    assert event["exc_info"] is True


async def test_logs_never_contain_a_token(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    """Accepted, refused and unauthorised requests leave no bearer token in any log."""
    caplog.set_level(logging.DEBUG)

    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await submit(client, bare_message())
        await submit(client, bare_message(), token=TOKEN_C)
        await submit(client, bare_message(), token="a-guessed-token-xyz")
        await read(client, "/v1/messages")

    assert {"message_accepted", "message_rejected", "request_refused"} <= {e["event"] for e in logs}
    for secret in (TOKEN_A, TOKEN_C, "a-guessed-token-xyz"):
        assert secret not in repr(logs)
        assert secret not in caplog.text


def test_the_openapi_file_documents_exactly_the_served_routes(
    config: GatewayConfig, blobs: BlobStore
) -> None:
    """docs/openapi.yaml is valid YAML and names every path and method served, and no other."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text()
    spec = yaml.safe_load(text)
    documented = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }
    app = create_api(config, Journal.from_url(config.storage.journal), blobs)

    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }

    assert documented == served


# ---------------------------------------------------------------------- receipts owed


async def test_message_shows_the_receipts_this_gateway_owes_for_it(
    client: Client, tmp_path: Path
) -> None:
    """A partner's 0401 lists its owed 0403 (pending) and 0402 (waiting for the import)."""
    accepted = await (
        await submit(client, container(tmp_path), content_type="application/zip")
    ).json()

    body = await (await read(client, f"/v1/messages/{accepted['id']}")).json()

    owed = {r["code"]: (r["state"], r["overdue"]) for r in body["receipts"]}
    assert owed == {"0403": ("pending", False), "0402": ("waiting", False)}


async def test_receipt_owed_past_the_timeout_is_flagged_overdue(
    config: GatewayConfig, journal: Journal, blobs: BlobStore, tmp_path: Path
) -> None:
    """B has no route back to A, so its receipts stay owed; past the timeout they are overdue."""
    impatient = config.model_copy(
        update={"processes": config.processes.model_copy(update={"receipt_timeout_seconds": 0.01})}
    )
    async with TestClient(TestServer(create_api(impatient, journal, blobs))) as client:
        response = await submit(client, container(tmp_path), content_type="application/zip")
        message_id = (await response.json())["id"]
        await asyncio.sleep(0.05)  # past the timeout

        body = await (await read(client, f"/v1/messages/{message_id}")).json()

    assert {r["code"] for r in body["receipts"] if r["overdue"]} == {"0403", "0402"}
