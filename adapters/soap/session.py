"""The HTTP session the gateway's zeep clients (dmsin, XTA, ...) talk through.

requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override a session's
``verify`` (psf/requests#3829), so a configured ``ca_file`` would be ignored
silently on hosts that set them: ``CaSession`` keeps it. Proxy settings from the
environment still apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests


class CaSession(requests.Session):
    """A requests session whose configured CA file wins over the environment."""

    def __init__(self, ca_file: str | None) -> None:
        """A session trusting ``ca_file`` (the system's CAs when ``None``)."""
        super().__init__()
        self.ca_file = ca_file
        if ca_file is not None:
            self.verify = ca_file

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        """The environment's settings, but never its CA bundle over ``ca_file``."""
        settings: dict[str, Any] = super().merge_environment_settings(
            url, proxies, stream, verify, cert
        )
        if self.ca_file is not None:
            settings["verify"] = self.ca_file
        return settings


def tls_session(
    ca_file: Path | None,
    client_certificate: Path | None = None,
    client_key: Path | None = None,
) -> CaSession:
    """A session trusting ``ca_file`` and presenting the client certificate, if any.

    Args:
        ca_file: PEM bundle the server's certificate must chain to; ``None``: the system's.
        client_certificate: PEM client certificate for mutual TLS (with its key
            when ``client_key`` is ``None``).
        client_key: its private key, unencrypted.
    """
    session = CaSession(str(ca_file) if ca_file is not None else None)
    if client_certificate is not None:
        session.cert = (
            (str(client_certificate), str(client_key))
            if client_key is not None
            else str(client_certificate)
        )
    return session
