"""gateway.toml for mutual TLS: the new keys, and how mistakes in them and their files read."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway import tls
from gateway.config import load_config
from gateway.errors import ConfigError
from tests.certs import CertAuthority

CONFIG = """
[node]
id = "kommune-b"
behoerdenkennung = "060:4711"

[http.tls]
certificate = "tls/server.crt"
private_key = "tls/server.key"
client_ca = "tls/ca.crt"

[[partners]]
id = "kommune-a"
behoerdenkennung = "060:0815"
certificate_sha256 = "{fingerprint}"

[destinations.kommune-a]
type = "http"
url = "https://127.0.0.1:8443/v1/messages"
ca_file = "tls/ca.crt"
client_certificate = "tls/client.crt"
client_key = "tls/client.key"

[[routes]]
empfaenger = "060:0815"
destination = "kommune-a"
"""
FINGERPRINT = "ab" * 32


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with gateway.toml and, in tls/, a CA, a server and a client certificate."""
    ca = CertAuthority.create(tmp_path / "tls")
    for name, role in (("server", {"server": True}), ("client", {"client": True})):
        ca.issue(tmp_path / "tls", name, **role)
    write(tmp_path)
    return tmp_path


def write(folder: Path, text: str = CONFIG, fingerprint: str = FINGERPRINT) -> Path:
    """Write gateway.toml into ``folder``."""
    path = folder / "gateway.toml"
    path.write_text(text.replace("{fingerprint}", fingerprint), encoding="utf-8")
    return path


def edit(folder: Path, old: str, new: str) -> Path:
    """Rewrite gateway.toml with ``old`` replaced by ``new``."""
    return write(folder, CONFIG.replace(old, new))


def errors_of(folder: Path) -> str:
    """The ConfigError message that checking the TLS files gives."""
    path = folder / "gateway.toml"
    with pytest.raises(ConfigError) as caught:
        tls.check_files(load_config(path)).raise_for_errors(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    return message


# ---------------------------------------------------------------------- loading


def test_tls_paths_are_resolved_against_the_config_folder(folder: Path) -> None:
    """Certificate, key and CA paths of the listener and of peer destinations are absolute."""
    config = load_config(folder / "gateway.toml")

    assert config.http.tls is not None
    assert config.http.tls.certificate == folder / "tls" / "server.crt"
    assert config.http.tls.client_ca == folder / "tls" / "ca.crt"
    destination = config.destinations["kommune-a"]
    assert destination.client_key == folder / "tls" / "client.key"  # type: ignore[union-attr]


def test_valid_files_pass_the_check(folder: Path) -> None:
    """A matching certificate, key and CA bundle give no error and no warning."""
    found = tls.check_files(load_config(folder / "gateway.toml"))

    assert (found.errors, found.warnings) == ([], [])


def test_fingerprint_in_openssl_form_is_stored_as_plain_hex(folder: Path) -> None:
    """'AB:CD:…' as openssl prints it is accepted and compared as lower-case hex."""
    path = write(folder, fingerprint=":".join(["AB"] * 32))

    [partner] = load_config(path).partners

    assert partner.certificate_sha256 == (FINGERPRINT,)


def test_several_fingerprints_allow_a_certificate_rollover(folder: Path) -> None:
    """A list binds the old and the renewed certificate at once."""
    path = edit(
        folder,
        'certificate_sha256 = "{fingerprint}"',
        f'certificate_sha256 = ["{"ab" * 32}", "{"cd" * 32}"]',
    )

    [partner] = load_config(path).partners

    assert partner.certificate_sha256 == ("ab" * 32, "cd" * 32)


def test_partner_with_a_certificate_binding_needs_no_token(folder: Path) -> None:
    """A certificate binding alone is a complete credential."""
    [partner] = load_config(folder / "gateway.toml").partners

    assert partner.certificate_bound and not partner.has_token


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'certificate_sha256 = "{fingerprint}"',
            'certificate_sha256 = "abc"',
            r"partners\[0\]\.certificate_sha256: 'abc' is not a SHA-256 certificate fingerprint",
        ),
        (
            'certificate_sha256 = "{fingerprint}"',
            "",
            r"partners\[0\]: give exactly one of token_sha256 or token_env, or bind a client certificate",
        ),
        (
            'client_ca = "tls/ca.crt"\n',
            "",
            r"http\.tls: require_client_certificate = true needs client_ca",
        ),
        (
            'client_ca = "tls/ca.crt"\n',
            "require_client_certificate = false\n",
            r"partners\[0\] \(kommune-a\) is bound to a client certificate, but \[http\.tls\] has no client_ca",
        ),
        (
            'client_key = "tls/client.key"\n',
            "",
            r"destinations\.kommune-a: client_certificate and client_key go together",
        ),
        (
            'url = "https://',
            'url = "http://',
            r"destinations\.kommune-a: ca_file, client_certificate, client_key only apply to TLS; change url to https://",
        ),
        (
            'client_certificate = "tls/client.crt"\nclient_key = "tls/client.key"\n',
            "",
            r"destinations\.kommune-a: give token_env .*, or client_certificate and client_key",
        ),
        (
            "[http.tls]",
            "[http.tls]\nclient_certificate = 'x'",
            r"http\.tls\.client_certificate: unknown key",
        ),
    ],
)
def test_key_mistakes_are_explained_with_file_and_key(
    folder: Path, old: str, new: str, expected: str
) -> None:
    """Each invalid TLS setting is reported with the file, the key path and how to fix it."""
    assert old in CONFIG
    path = edit(folder, old, new)

    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(path)

    assert str(caught.value).startswith(f"{path}: ")


def test_one_certificate_bound_to_two_partners_is_refused(folder: Path) -> None:
    """A certificate must identify exactly one partner."""
    second = (
        '\n[[partners]]\nid = "kommune-c"\nbehoerdenkennung = "060:1234"\n'
        f'certificate_sha256 = "{FINGERPRINT.upper()}"\n'
    )
    path = write(folder, CONFIG + second)

    with pytest.raises(ConfigError, match="partners kommune-a and kommune-c are both bound"):
        load_config(path)


# ---------------------------------------------------------------------- files


def test_missing_file_is_named_with_its_key(folder: Path) -> None:
    """A certificate file that does not exist."""
    (folder / "tls" / "server.crt").unlink()

    assert f"http.tls.certificate: {folder / 'tls' / 'server.crt'} does not exist" in errors_of(
        folder
    )


def test_key_of_another_certificate_is_refused(folder: Path) -> None:
    """The client key in place of the server key: the public keys differ."""
    edit(folder, 'private_key = "tls/server.key"', 'private_key = "tls/client.key"')

    assert (
        f"http.tls.private_key: {folder / 'tls' / 'client.key'} is not the private key of "
        f"http.tls.certificate {folder / 'tls' / 'server.crt'}"
    ) in errors_of(folder)


def test_file_without_pem_is_refused(folder: Path) -> None:
    """A CA bundle that is not PEM (e.g. DER or garbage) says how to convert it."""
    (folder / "tls" / "ca.crt").write_bytes(b"\x30\x82 not pem at all")

    message = errors_of(folder)

    assert "http.tls.client_ca:" in message and "holds no PEM certificate" in message
    assert "destinations.kommune-a.ca_file:" in message


def test_swapped_certificate_and_key_are_recognised(folder: Path) -> None:
    """The key file named as certificate and the other way round."""
    edit(
        folder,
        'certificate = "tls/server.crt"\nprivate_key = "tls/server.key"',
        'certificate = "tls/server.key"\nprivate_key = "tls/server.crt"',
    )

    message = errors_of(folder)

    assert (
        "http.tls.certificate:" in message and "holds a private key, not a certificate" in message
    )
    assert (
        "http.tls.private_key:" in message and "holds a certificate, not a private key" in message
    )


def test_encrypted_key_is_refused_with_how_to_decrypt(folder: Path) -> None:
    """The gateway starts unattended, so a passphrase-protected key cannot be used."""
    key = ec.generate_private_key(ec.SECP256R1())
    (folder / "tls" / "client.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )

    assert "destinations.kommune-a.client_key:" in errors_of(folder)
    assert "is encrypted with a passphrase" in errors_of(folder)


def test_unreadable_file_is_named(folder: Path) -> None:
    """A folder where a file should be."""
    edit(folder, 'client_ca = "tls/ca.crt"', 'client_ca = "tls"')

    assert f"http.tls.client_ca: {folder / 'tls'} is a folder" in errors_of(folder)


def test_server_certificate_used_as_client_certificate_is_refused(folder: Path) -> None:
    """A certificate without clientAuth in its extendedKeyUsage would be refused by the peer."""
    edit(
        folder,
        'client_certificate = "tls/client.crt"\nclient_key = "tls/client.key"',
        'client_certificate = "tls/server.crt"\nclient_key = "tls/server.key"',
    )

    assert "destinations.kommune-a.client_certificate:" in errors_of(folder)
    assert "is not a TLS client certificate" in errors_of(folder)


def test_expired_certificate_is_a_warning(folder: Path) -> None:
    """An expired server certificate is reported, but does not stop the check."""
    other = CertAuthority.create(folder / "other-ca")
    other.issue(folder / "tls", "server", server=True, expired=True)  # replaces server.crt/.key

    found = tls.check_files(load_config(folder / "gateway.toml"))

    assert found.errors == []
    [warning] = [w for w in found.warnings if "http.tls.certificate" in w]
    yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    assert f"expired on {yesterday:%Y-%m-%d}" in warning
