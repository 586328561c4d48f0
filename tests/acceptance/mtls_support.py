"""Two gateways over mutual TLS for the acceptance tests: certificates and configurations.

``ikz-gateway dev make-certs`` makes the CA and the certificates (as the README
tells an operator); ``mtls_config`` writes a gateway's ``gateway.toml`` with the
printed lines: ``[http.tls]`` for its listener, the peer's client certificate
fingerprint in the partner entry, its own client certificate in the peer
destination. No bearer tokens: the certificates alone authenticate.
"""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from pathlib import Path

from tests.acceptance.processes import ROOT, environment

KENNUNG = {"kommune-a": "060:0815", "kommune-b": "060:4711"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def make_certs(directory: Path, *nodes: str) -> dict[tuple[str, str], str]:
    """``dev make-certs``; the printed fingerprint of each (node, "server"|"client")."""
    result = run("dev", "make-certs", str(directory), *(f"--node={n}" for n in nodes))
    assert result.returncode == 0, result.stdout + result.stderr
    printed: dict[tuple[str, str], str] = {}
    node = ""
    for line in result.stdout.splitlines():
        if line in nodes:
            node = line
        found = re.match(r"^  (server|client)  \S+  sha256 ([0-9a-f]{64})$", line)
        if found:
            printed[(node, found.group(1))] = found.group(2)
    return printed


def mtls_config(
    home: Path,
    certs: Path,
    node: str,
    peer: str,
    ports: dict[str, int],
    peer_fp: str,
    *,
    processes: str,
    delivery: str,
    local: str,
) -> str:
    """A gateway serving HTTPS that accepts ``peer`` by certificate and delivers to it.

    Args:
        processes: the ``[processes]`` table's lines.
        delivery: extra lines of the peer destination (backoff, attempts).
        local: the tables of the destination ``local`` (and any more, e.g. ``[dms]``),
            where messages for the node itself go.
    """
    own, theirs = KENNUNG[node], KENNUNG[peer]
    return f"""
[node]
id = "{node}"
behoerdenkennung = "{own}"

[storage]
journal = "sqlite:///{home / "data" / "journal.db"}"
blobs = "{home / "data" / "blobs"}"

[http]
port = {ports[node]}

[http.tls]
certificate = "{certs / node / "server.crt"}"
private_key = "{certs / node / "server.key"}"
client_ca = "{certs / "ca.crt"}"

[processes]
{processes}

[worker]
poll_interval_seconds = 0.1

[[partners]]
id = "{peer}"
behoerdenkennung = "{theirs}"
certificate_sha256 = "{peer_fp}"

[destinations.{peer}]
type = "http"
url = "https://127.0.0.1:{ports[peer]}/v1/messages"
ca_file = "{certs / "ca.crt"}"
client_certificate = "{certs / node / "client.crt"}"
client_key = "{certs / node / "client.key"}"
{delivery}
{local}
[[routes]]
empfaenger = "{theirs}"
destination = "{peer}"

[[routes]]
empfaenger = "{own}"
destination = "local"
"""


def probe_context(certs: Path, node: str) -> ssl.SSLContext:
    """What the health probe presents: the node's own client certificate, trusting the CA."""
    context = ssl.create_default_context(cafile=certs / "ca.crt")
    context.load_cert_chain(certs / node / "client.crt", certs / node / "client.key")
    return context
