"""gateway.toml: what loads, and how mistakes are explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config, partner_for_token, token_digest
from gateway.errors import ConfigError

MINIMAL = """
[node]
id = "kommune-a"
behoerdenkennung = "060:0815"

[storage]
journal = "sqlite:///data/journal.db"
blobs = "data/blobs"

[[partners]]
id = "kommune-b"
behoerdenkennung = "060:4711"
token_sha256 = "{digest}"

[destinations.drop]
type = "filesystem"
directory = "out"

[[routes]]
empfaenger = "060:4711"
destination = "drop"
"""


def write(tmp_path: Path, text: str) -> Path:
    """Write a configuration file."""
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_relative_paths_are_resolved_against_the_config_folder(tmp_path: Path) -> None:
    """Journal file, blob folder and transfer folders are relative to the file."""
    config = load_config(write(tmp_path, MINIMAL.format(digest=token_digest("s3cret"))))

    assert config.storage.journal == f"sqlite:///{tmp_path}/data/journal.db"
    assert config.storage.blobs == tmp_path / "data" / "blobs"
    assert config.destinations["drop"].directory == tmp_path / "out"  # type: ignore[union-attr]


def test_token_is_matched_by_its_digest(tmp_path: Path) -> None:
    """A bearer token maps to the partner whose stored digest it has."""
    config = load_config(write(tmp_path, MINIMAL.format(digest=token_digest("s3cret"))))

    assert partner_for_token(config, "s3cret").id == "kommune-b"  # type: ignore[union-attr]
    assert partner_for_token(config, "wrong") is None


def test_token_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """token_env reads the token from the environment at request time."""
    text = MINIMAL.replace('token_sha256 = "{digest}"', 'token_env = "IKZ_TEST_TOKEN"')
    monkeypatch.setenv("IKZ_TEST_TOKEN", "from-env")
    config = load_config(write(tmp_path, text))

    assert partner_for_token(config, "from-env").id == "kommune-b"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('behoerdenkennung = "060:0815"', 'behoerdenkennung = "0600815"'),
            r"node\.behoerdenkennung: '0600815' is not a Behördenkennung",
        ),
        (
            ('destination = "drop"', 'destination = "dms"'),
            r"routes\[0\] names destination 'dms', which is not configured \(destinations: drop\)",
        ),
        (
            ('token_sha256 = "{digest}"', 'token_sha256 = "abc"'),
            r"partners\[0\]\.token_sha256: token_sha256 must be the 64-character",
        ),
        (
            ('token_sha256 = "{digest}"', ""),
            r"partners\[0\]: give exactly one of token_sha256 or token_env",
        ),
        (('type = "filesystem"', 'type = "ftp"'), r"destinations\.drop"),
        (("[storage]", "[storage]\njournl = 'x'"), r"storage\.journl: unknown key"),
        (
            ('journal = "sqlite:///data/journal.db"', 'journal = "mysql://x"'),
            r"storage\.journal: 'mysql://x' is not a supported journal URL",
        ),
    ],
)
def test_mistakes_are_explained_with_file_and_key(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    """Each invalid setting is reported with the file, the key path and how to fix it."""
    text = MINIMAL.replace(*change).format(digest=token_digest("x"))
    path = write(tmp_path, text)

    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(path)

    assert str(path) in str(caught.value)


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    """A TOML syntax error is reported with its line."""
    path = write(tmp_path, "[node\nid = 1\n")

    with pytest.raises(ConfigError, match=r"TOML syntax error: .*line 1"):
        load_config(path)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    """A path that does not exist gives a one-line error."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_one_gateway_process_unless_http_processes_says_more(tmp_path: Path) -> None:
    """``[http] processes`` defaults to 1 and takes the number of serve processes."""
    minimal = MINIMAL.format(digest=token_digest("s3cret"))
    several = minimal.replace("[[partners]]", "[http]\nprocesses = 4\n\n[[partners]]")

    assert load_config(write(tmp_path, minimal)).http.processes == 1
    assert load_config(write(tmp_path, several)).http.processes == 4


def test_zero_processes_is_explained(tmp_path: Path) -> None:
    """``[http] processes = 0`` names the key and the lower bound."""
    text = MINIMAL.format(digest=token_digest("s3cret")).replace(
        "[[partners]]", "[http]\nprocesses = 0\n\n[[partners]]"
    )

    with pytest.raises(ConfigError, match=r"http\.processes: .*greater than or equal to 1"):
        load_config(write(tmp_path, text))
