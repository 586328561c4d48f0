"""The retry policy: capped exponential backoff with full jitter, bounded by attempts and age."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from contracts.config import RetryConfig
from gateway.retry import GiveUp, RetryAt, RetryPolicy

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=10, max_age=timedelta(days=7), initial=1.0, maximum=60.0)


@pytest.fixture
def jitter_bounds(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """Record the range every jittered wait is drawn from, and draw its upper end."""
    drawn: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        drawn.append((low, high))
        return high

    monkeypatch.setattr(random, "uniform", uniform)
    return drawn


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (30, 60.0)]
)
def test_backoff_is_drawn_from_zero_to_a_capped_exponential(
    jitter_bounds: list[tuple[float, float]], attempt: int, ceiling: float
) -> None:
    """Full jitter: the wait is uniform between 0 and initial·2^(n-1), capped at the maximum."""
    POLICY.backoff(attempt)

    assert jitter_bounds == [(0, ceiling)]


def test_backoff_varies_between_calls() -> None:
    """Two workers failing at once do not retry in step."""
    random.seed(7)

    waits = {POLICY.backoff(5) for _ in range(20)}

    assert len(waits) == 20
    assert all(0 <= wait <= 16.0 for wait in waits)


def test_failed_attempt_is_retried_within_the_backoff(
    jitter_bounds: list[tuple[float, float]],
) -> None:
    """With attempts and time left, the next attempt is due after the drawn backoff."""
    decision = POLICY.decide(attempt=3, window_started_at=NOW, now=NOW, error="503")

    assert decision == RetryAt(NOW + timedelta(seconds=4.0))


def test_gives_up_after_max_attempts() -> None:
    """The attempt that spends the budget dead-letters, naming the count and last error."""
    decision = POLICY.decide(attempt=10, window_started_at=NOW, now=NOW, error="peer answered 503")

    assert decision == GiveUp("gave up after 10 attempts; last error: peer answered 503")


def test_attempt_before_the_last_is_still_retried() -> None:
    """One attempt short of the maximum still gets a retry."""
    decision = POLICY.decide(attempt=9, window_started_at=NOW, now=NOW, error="503")

    assert isinstance(decision, RetryAt)


def test_gives_up_when_the_retry_would_fall_past_max_age(
    jitter_bounds: list[tuple[float, float]],
) -> None:
    """A retry that would be due later than max age after the first attempt is not scheduled."""
    started = NOW - timedelta(days=7) + timedelta(seconds=1)

    decision = POLICY.decide(attempt=2, window_started_at=started, now=NOW, error="timeout")

    assert isinstance(decision, GiveUp)
    assert decision.reason.startswith("gave up: retrying past 7 days")
    assert decision.reason.endswith("last error: timeout")


def test_policy_comes_from_the_destination_settings() -> None:
    """A destination's retry settings become the policy's bounds."""
    config = RetryConfig(
        max_attempts=5,
        max_age_seconds=3600,
        initial_backoff_seconds=0.5,
        max_backoff_seconds=30,
    )

    assert RetryPolicy.from_config(config) == RetryPolicy(
        max_attempts=5, max_age=timedelta(hours=1), initial=0.5, maximum=30.0
    )
