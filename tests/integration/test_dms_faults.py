"""Faults at every step of a dmsin import, then a retry as the worker's retry queue makes it.

Each case injects one fault into the simulator at one operation of the import
(some after a few calls of that operation went through, so the import stops
half-way), expects the delivery to fail with the right error class, delivers the
same message again, and checks the simulator holds exactly the message's objects
and documents: none missing, none twice, no orphans, every byte identical.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from contracts.delivery import Outbound
from gateway.blobs import BlobStore
from gateway.errors import PermanentDeliveryError, TransientDeliveryError
from tests.delivery_support import outbound
from tests.dms_support import (
    TRANSIENT_STATUS,
    Sim,
    assert_exactly_filed,
    container,
    dmsin_destination,
    kleine_akte,
    running_sim,
)

#: (operation, how many of its calls succeed before the fault strikes). The small
#: Akte's import calls, in order: SearchObjNameGI + Create… per object (Akte,
#: Vorgang, internal Dokument, Eingang), CreateContentObjectGI + ReadContentObjectGI
#: (read-back check) per document (three).
STEPS = [
    ("SearchObjNameGI", 0),
    ("SearchObjNameGI", 2),
    ("CreateFileGI", 0),
    ("CreateProcedureGI", 0),
    ("CreateInternalGI", 0),
    ("CreateIncomingGI", 0),
    ("CreateContentObjectGI", 0),
    ("CreateContentObjectGI", 2),
    ("ReadContentObjectGI", 1),
]

#: Faults that must end in a retry: what the simulator does, as a fault rule.
FAULTS: dict[str, dict[str, Any]] = {
    "http500": {"kind": "http500"},
    "drop-before": {"kind": "drop"},
    "drop-after-commit": {"kind": "drop", "when": "after"},
    "soap-server-fault": {"kind": "fault"},
    "slow-answer-after-commit": {"kind": "latency", "when": "after", "seconds": 0.8},
    "business-locked": {"kind": "business", "status": TRANSIENT_STATUS, "message": "gesperrt"},
}


async def deliver_until_done(
    first: Any, retry: Any, item: Outbound, *, expected: type[Exception]
) -> None:
    """The first attempt fails with ``expected``; the retry (attempt 2) succeeds.

    The retry may go through another destination object (a worker restarted with
    normal timeouts), which is also what a retry after a crash looks like.
    """
    with pytest.raises(expected):
        await first.deliver(item)
    await retry.deliver(item.model_copy(update={"attempt": 2}))


async def idle(sim: Sim) -> None:
    """Wait (bounded) until the simulator has no request in flight."""
    for _ in range(100):
        if (await sim.calls())["in_flight"] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the simulator kept a request in flight for 5 s")


async def called(sim: Sim, operation: str) -> None:
    """Wait (bounded) until the simulator has received a call of ``operation``."""
    for _ in range(100):
        if operation in (await sim.calls())["calls"]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {operation} within 5 s")


@pytest.mark.parametrize(("operation", "skip"), STEPS, ids=[f"{o}-{s}" for o, s in STEPS])
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_retry_after_fault_files_everything_exactly_once(
    operation: str, skip: int, fault: str, tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A transient fault at any step, then a retry: every object and document exactly once."""
    akte = kleine_akte()
    built = container(tmp_path / "in", [akte], pdf_bytes)
    blobs = BlobStore(tmp_path / "blobs")
    item = await outbound(blobs, built.data, prozess_id=built.prozess_id)
    async with running_sim(tmp_path / "sim") as sim:
        # Only the slow answer needs a short timeout; elsewhere it would only add flakiness.
        timeout = 0.4 if FAULTS[fault]["kind"] == "latency" else 5.0
        first = dmsin_destination(sim, read_timeout_seconds=timeout)
        retry = dmsin_destination(sim)
        await sim.fault(operation=operation, skip=skip, **FAULTS[fault])

        await deliver_until_done(first, retry, item, expected=TransientDeliveryError)

        assert (await sim.calls())["calls"].count(operation) > skip
        await idle(sim)
        assert_exactly_filed(await sim.objects(), [akte], built.documents)
        await first.close()
        await retry.close()


async def test_refusal_is_permanent_and_a_replay_completes(
    tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A business refusal dead-letters; replaying after the cause is fixed files the rest once."""
    akte = kleine_akte()
    built = container(tmp_path / "in", [akte], pdf_bytes)
    item = await outbound(BlobStore(tmp_path / "blobs"), built.data, prozess_id="p")
    async with running_sim(tmp_path / "sim") as sim:
        destination = dmsin_destination(sim)
        await sim.fault(
            operation="CreateIncomingGI", kind="business", status=2, message="Keine Berechtigung"
        )

        with pytest.raises(PermanentDeliveryError, match="status 2: Keine Berechtigung"):
            await destination.deliver(item)
        await destination.deliver(item.model_copy(update={"attempt": 2}))

        assert_exactly_filed(await sim.objects(), [akte], built.documents)
        await destination.close()


async def test_request_the_dms_finishes_after_the_timeout_is_found_by_the_retry(
    tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A create the DMS completes after the client gave up is found, not made twice."""
    akte = kleine_akte()
    built = container(tmp_path / "in", [akte], pdf_bytes)
    item = await outbound(BlobStore(tmp_path / "blobs"), built.data, prozess_id="p")
    async with running_sim(tmp_path / "sim") as sim:
        destination = dmsin_destination(sim, read_timeout_seconds=1.0)
        await sim.fault(operation="CreateProcedureGI", kind="latency", seconds=2.0)

        with pytest.raises(TransientDeliveryError, match=r"did not answer within 1 s"):
            await destination.deliver(item)
        await idle(sim)  # the worker's backoff: the DMS finished meanwhile
        ergebnis = await destination.import_message(item.model_copy(update={"attempt": 2}))

        assert ergebnis.vorhanden == 2  # the Akte and the Vorgang the DMS made late

        assert_exactly_filed(await sim.objects(), [akte], built.documents)
        await destination.close()


async def test_a_retry_racing_a_slow_create_is_detected(tmp_path: Path, pdf_bytes: bytes) -> None:
    """If the retry overtakes a create still running in the DMS, the duplicate is reported."""
    akte = kleine_akte()
    built = container(tmp_path / "in", [akte], pdf_bytes)
    item = await outbound(BlobStore(tmp_path / "blobs"), built.data, prozess_id="p")
    async with running_sim(tmp_path / "sim") as sim:
        destination = dmsin_destination(sim, read_timeout_seconds=1.0)
        await sim.fault(operation="CreateProcedureGI", kind="latency", seconds=2.0)
        with pytest.raises(TransientDeliveryError):
            await destination.deliver(item)
        await destination.deliver(item.model_copy(update={"attempt": 2}))
        await idle(sim)

        with pytest.raises(PermanentDeliveryError, match=r"2 objects .* carry the xdomea UUID"):
            await destination.deliver(item.model_copy(update={"attempt": 3}))
        await destination.close()


async def test_cancelled_attempt_is_waited_for_before_the_next(
    tmp_path: Path, pdf_bytes: bytes
) -> None:
    """A worker timeout cancels the attempt, not its SOAP call; the retry waits for that call."""
    akte = kleine_akte()
    built = container(tmp_path / "in", [akte], pdf_bytes)
    item = await outbound(BlobStore(tmp_path / "blobs"), built.data, prozess_id="p")
    async with running_sim(tmp_path / "sim") as sim:
        destination = dmsin_destination(sim, read_timeout_seconds=5.0)
        await sim.fault(operation="CreateProcedureGI", kind="latency", seconds=1.0)

        attempt = asyncio.create_task(destination.deliver(item))
        await called(sim, "CreateProcedureGI")
        attempt.cancel()  # what the worker's attempt timeout does
        with pytest.raises(asyncio.CancelledError):
            await attempt
        ergebnis = await destination.import_message(item.model_copy(update={"attempt": 2}))

        assert ergebnis.vorhanden == 2  # it found the Vorgang the cancelled call made

        assert_exactly_filed(await sim.objects(), [akte], built.documents)
        await destination.close()


async def test_unreachable_dms_is_transient(tmp_path: Path, pdf_bytes: bytes) -> None:
    """A DMS that is not listening fails transiently and says where it tried."""
    built = container(tmp_path / "in", [kleine_akte()], pdf_bytes)
    item = await outbound(BlobStore(tmp_path / "blobs"), built.data, prozess_id="p")
    async with running_sim(tmp_path / "sim") as sim:
        destination = dmsin_destination(sim)
        url = sim.url
    # The simulator is gone now; its address refuses connections.
    with pytest.raises(TransientDeliveryError, match="cannot load the dmsin WSDL"):
        await destination.deliver(item)
    assert url in str(destination.port.where)  # type: ignore[attr-defined]
    await destination.close()


async def test_two_messages_with_one_akte_at_once_file_it_once(
    tmp_path: Path, pdf_bytes: bytes
) -> None:
    """Two Abgaben carrying the same Akte, delivered concurrently, share one set of objects."""
    akte = kleine_akte()
    blobs = BlobStore(tmp_path / "blobs")
    first = container(tmp_path / "first", [akte], pdf_bytes)
    second = container(tmp_path / "second", [akte], pdf_bytes)
    assert first.prozess_id != second.prozess_id
    async with running_sim(tmp_path / "sim") as sim:
        destination = dmsin_destination(sim)

        await asyncio.gather(
            destination.deliver(await outbound(blobs, first.data, prozess_id="1")),
            destination.deliver(await outbound(blobs, second.data, prozess_id="2")),
        )

        assert_exactly_filed(await sim.objects(), [akte], first.documents)
        await destination.close()
