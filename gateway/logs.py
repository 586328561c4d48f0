"""Logging set-up: structlog, JSON lines on stderr, configured once by the entry point.

Events are snake_case action names with key-value fields; ids (message id,
ProzessID, partner) are bound through contextvars by the code handling them.
Document contents and secrets are never logged.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "INFO", *, json: bool = True) -> None:
    """Configure structlog for the process. Call once, from the entry point."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        # One write (and flush) per line: the processes of ``serve --processes`` share
        # stderr, and print()'s separate write of the newline let their lines interleave.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
