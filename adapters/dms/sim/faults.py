"""Fault injection for the simulator: make chosen operations slow, fail or vanish.

A rule names an operation (or ``*``), a kind, and when it strikes:

* ``before`` — the request is not carried out (the DMS failed before doing it);
* ``after`` — the request is carried out and committed, then the answer is lost
  or replaced (the DMS did it, the client cannot know).

Kinds: ``latency`` (wait ``seconds``, then go on), ``http500`` (an HTTP 500 with a
plain-text body, as a broken proxy gives), ``fault`` (a SOAP Receiver fault),
``business`` (a normal answer with ``status``/``errormessage``; only ``before``),
``refuse`` (a SOAP Sender/Client fault: the DMS refuses what was sent, e.g. a
document its virus scanner or format check rejects; only ``before``), ``drop``
(close the connection without an answer). ``match`` limits a rule to requests
whose body contains that text (e.g. one document's file name). ``skip`` lets that
many matching calls through first; ``times`` is how often the rule strikes.
"""

from __future__ import annotations

import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FaultKind = Literal["latency", "http500", "fault", "business", "refuse", "drop"]


class FaultRule(BaseModel):
    """One injected fault."""

    model_config = ConfigDict(extra="forbid")

    operation: str = Field(description="operation name, or * for every operation")
    kind: FaultKind
    when: Literal["before", "after"] = "before"
    times: int = Field(default=1, ge=1)
    skip: int = Field(default=0, ge=0)
    seconds: float = Field(default=0.0, ge=0, le=600)
    status: int = 99
    message: str = "simulated failure"
    #: Strike only requests whose body contains this text (UTF-8); none = every request.
    match: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _business_before(self) -> FaultRule:
        if self.kind in ("business", "refuse") and self.when != "before":
            raise ValueError(f"a {self.kind} answer replaces the operation: use when=before")
        return self


class FaultPlan:
    """The active rules; thread-safe, consumed as they strike."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> None:
        """Activate a rule."""
        with self._lock:
            self._rules.append(rule.model_copy())

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        """The rules still active."""
        with self._lock:
            return [r.model_copy() for r in self._rules]

    def strike(self, operation: str, when: str, body: bytes = b"") -> FaultRule | None:
        """The rule that strikes this call (request ``body``) at this point, if any (counted)."""
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule.when != when or rule.operation not in (operation, "*"):
                    continue
                if rule.match is not None and rule.match.encode() not in body:
                    continue
                if rule.skip > 0:
                    self._rules[index] = rule.model_copy(update={"skip": rule.skip - 1})
                    continue
                if rule.times > 1:
                    self._rules[index] = rule.model_copy(update={"times": rule.times - 1})
                else:
                    del self._rules[index]
                return rule
        return None
