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
        (
            ("[storage]", "[retention]\npurge_after_days = 0\n\n[storage]"),
            r"retention\.purge_after_days: .*greater than 0",
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


def test_own_dms_paths_are_resolved_against_the_config_folder(tmp_path: Path) -> None:
    """``[dms]`` with a relative folder (filesystem) or WSDL file (dmsin) is made absolute."""
    base = MINIMAL.format(digest=token_digest("s3cret"))

    filesystem = load_config(
        write(tmp_path, base + '\n[dms]\nbackend = "filesystem"\ndirectory = "akten"\n')
    )
    dmsin = load_config(
        write(
            tmp_path,
            base
            + '\n[dms]\nbackend = "dmsin"\n[dms.dmsin]\nwsdl = "wsdl/dmsin.wsdl"\nuserlogin = "svc"\n',
        )
    )

    assert filesystem.dms is not None and filesystem.dms.directory == tmp_path / "akten"
    assert dmsin.dms is not None and dmsin.dms.dmsin is not None
    assert dmsin.dms.dmsin.wsdl == str(tmp_path / "wsdl" / "dmsin.wsdl")


def test_mark_abgegeben_without_own_dms_is_refused_with_the_fix(tmp_path: Path) -> None:
    """on_completed = "mark-abgegeben" needs [dms]; the error says so."""
    text = (
        MINIMAL.format(digest=token_digest("s3cret"))
        + '\n[processes]\non_completed = "mark-abgegeben"\n'
    )

    with pytest.raises(ConfigError, match=r"needs this node's DMS: add a \[dms\] table"):
        load_config(write(tmp_path, text))


def test_operator_token_needs_exactly_one_source(tmp_path: Path) -> None:
    """[operator] takes token_sha256 or token_env, not both and not neither."""
    text = MINIMAL.format(digest=token_digest("s3cret")) + (
        f'\n[operator]\ntoken_sha256 = "{token_digest("op")}"\ntoken_env = "OP"\n'
    )

    with pytest.raises(
        ConfigError, match="operator: give exactly one of token_sha256 or token_env"
    ):
        load_config(write(tmp_path, text))


FVDATEN_AND_SOAP = """
[destinations.fv]
type = "fvdaten"
backend = "filesystem"
directory = "dms"
fachverfahren = ["060:0815-FV"]

[destinations.partner]
type = "soap"
wsdl = "partner.wsdl"
operation = "CreateFileGI"

[destinations.partner.parameters]
shortname = "string(//xdomea:Akte/xdomea:AllgemeineMetadaten/xdomea:Betreff)"
"userformsdata.ref" = "'x'"

[destinations.partner.response]
fields = { id = "objid" }
success_field = "status"
"""


def test_fvdaten_and_soap_destinations_load_with_paths_resolved(tmp_path: Path) -> None:
    """An fvdaten destination's DMS folder and a soap destination's WSDL file are made absolute."""
    text = MINIMAL.format(digest=token_digest("s")) + FVDATEN_AND_SOAP

    config = load_config(write(tmp_path, text))

    assert config.destinations["fv"].directory == tmp_path / "dms"  # type: ignore[union-attr]
    assert config.destinations["partner"].wsdl == str(tmp_path / "partner.wsdl")  # type: ignore[union-attr]


def test_a_soap_parameter_that_is_no_xpath_is_explained(tmp_path: Path) -> None:
    """A broken XPath names the parameter and says it is no XPath 1.0 expression."""
    text = MINIMAL.format(digest=token_digest("s")) + FVDATEN_AND_SOAP.replace("\"'x'\"", '"//["')

    with pytest.raises(ConfigError, match=r"parameters\.userformsdata\.ref.*XPath"):
        load_config(write(tmp_path, text))


def test_an_fvdaten_destination_without_fachverfahren_is_refused(tmp_path: Path) -> None:
    """Whose requests an fvdaten destination serves must be said; none is an error."""
    text = MINIMAL.format(digest=token_digest("s")) + FVDATEN_AND_SOAP.replace(
        'fachverfahren = ["060:0815-FV"]\n', ""
    )

    with pytest.raises(ConfigError, match="fachverfahren"):
        load_config(write(tmp_path, text))


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
