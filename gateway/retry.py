"""Retry policy: a pure object that decides what happens after a failed attempt.

Capped exponential backoff with full jitter (tenacity's ``wait_random_exponential``),
bounded by a number of attempts and by the age of the retry window. Durable
retries go through the journal (``retry_later`` / ``dead_letter``); this module
only decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tenacity import RetryCallState, wait_random_exponential

from contracts.config import RetryConfig


@dataclass(frozen=True)
class RetryAt:
    """Try again at ``at``."""

    at: datetime


@dataclass(frozen=True)
class GiveUp:
    """Stop and dead-letter, for ``reason``."""

    reason: str


Decision = RetryAt | GiveUp


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry a destination, and when to stop."""

    max_attempts: int
    max_age: timedelta
    initial: float
    maximum: float

    @classmethod
    def from_config(cls, config: RetryConfig) -> RetryPolicy:
        """The policy a destination's settings describe."""
        return cls(
            max_attempts=config.max_attempts,
            max_age=timedelta(seconds=config.max_age_seconds),
            initial=config.initial_backoff_seconds,
            maximum=config.max_backoff_seconds,
        )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), jittered."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return float(wait_random_exponential(multiplier=self.initial, max=self.maximum)(state))

    def decide(
        self, *, attempt: int, window_started_at: datetime, now: datetime, error: str
    ) -> Decision:
        """What to do after attempt number ``attempt`` failed transiently with ``error``."""
        if attempt >= self.max_attempts:
            return GiveUp(f"gave up after {attempt} attempts; last error: {error}")
        at = now + timedelta(seconds=self.backoff(attempt))
        if at - window_started_at > self.max_age:
            return GiveUp(
                f"gave up: retrying past {self.max_age} since the first attempt; "
                f"last error: {error}"
            )
        return RetryAt(at)
