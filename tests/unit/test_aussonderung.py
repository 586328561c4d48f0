"""Aussonderung without I/O: its configuration, the selection of what is valued A, file names."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from adapters.dms import mapping
from adapters.transfer.archive import answer_name, wrap_message
from contracts.config import GatewayConfig
from contracts.dms import Objektdaten
from contracts.transfer import LocalFolderConfig
from contracts.xdomea import MessageType, SchriftgutobjektArt
from gateway.aussonderung import check_aussonderung, depth, select_archived
from gateway.config import load_config
from gateway.errors import AussonderungRefused, ConfigError

CONFIG = """
[node]
id = "kommune-a"
behoerdenkennung = "060:0815"

[dms]
backend = "filesystem"
directory = "dms"

[archives.landesarchiv]
behoerdenkennung = "LA:LATh"
stages = 4
folder = {{ type = "local", path = "transfer" }}
{archive}

[destinations.archiv]
type = "archive"
archive = "{target}"

[destinations.aussonderung]
type = "aussonderung"

[[routes]]
empfaenger = "LA:LATh"
destination = "archiv"
"""

TYP_0505 = MessageType(element="Aussonderung.BewertungEmpfangBestaetigen.0505", code="0505")


def load(
    tmp_path: Path, *, archive: str = "", target: str = "landesarchiv", drop: str = ""
) -> GatewayConfig:
    """Load the example configuration with changes."""
    text = CONFIG.format(archive=archive, target=target)
    for line in drop.splitlines():
        text = text.replace(line + "\n", "")
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_an_archive_section_loads_with_its_folder_made_absolute(tmp_path: Path) -> None:
    """[archives.NAME] loads with x-man's defaults and its local folder relative to the file."""
    config = load(tmp_path)
    archive = config.archives["landesarchiv"]
    assert isinstance(archive.folder, LocalFolderConfig)
    assert archive.folder.path == tmp_path / "transfer"
    assert (archive.outgoing, archive.incoming, archive.naming) == (
        "to_archive",
        "from_archive",
        "long",
    )
    assert config.dms is not None
    assert config.dms.directory == tmp_path / "dms"


def test_an_archive_destination_naming_an_unknown_archive_is_explained(tmp_path: Path) -> None:
    """A destination of type archive must name a configured [archives.NAME]."""
    with pytest.raises(ConfigError, match=r"archive 'stadtarchiv', which is not configured"):
        load(tmp_path, target="stadtarchiv")


def test_an_aussonderung_destination_needs_the_nodes_dms(tmp_path: Path) -> None:
    """The engine exports from [dms]; without it the configuration says so."""
    drop = '[dms]\nbackend = "filesystem"\ndirectory = "dms"'
    with pytest.raises(ConfigError, match=r"add a \[dms\] section"):
        load(tmp_path, drop=drop)


def test_a_fachdatum_action_needs_field_and_value(tmp_path: Path) -> None:
    """action = "fachdatum" without field and value is refused with what to add."""
    with pytest.raises(ConfigError, match="needs field"):
        load(tmp_path, archive='archived = { action = "fachdatum" }')


def test_an_outgoing_sub_folder_must_not_leave_the_share(tmp_path: Path) -> None:
    """A sub-folder with '..' is refused."""
    with pytest.raises(ConfigError, match="must not contain"):
        load(tmp_path, archive='outgoing = "../elsewhere"')


def test_a_stage_model_other_than_two_or_four_is_refused(tmp_path: Path) -> None:
    """stages is 2 or 4."""
    with pytest.raises(ConfigError, match="stages"):
        load(tmp_path, archive="stages = 3", drop="stages = 4")


def _knoten(uuid: str, art: SchriftgutobjektArt, *kinder: mapping.Knoten) -> mapping.Knoten:
    return mapping.Knoten(daten=Objektdaten(art=art, uuid=uuid), kinder=kinder)


AKTE = SchriftgutobjektArt.AKTE
VORGANG = SchriftgutobjektArt.VORGANG
DOKUMENT = SchriftgutobjektArt.DOKUMENT


def _tree() -> mapping.Knoten:
    return _knoten(
        "akte",
        AKTE,
        _knoten("v1", VORGANG, _knoten("d1", DOKUMENT)),
        _knoten("v2", VORGANG, _knoten("d2", DOKUMENT)),
    )


def test_children_without_their_own_bewertung_follow_their_parent() -> None:
    """An Akte valued A goes with all its children when they are not valued themselves."""
    selected = select_archived(_tree(), {"akte": "A"}, None)
    assert selected is not None
    assert [k.daten.uuid for k in selected.kinder] == ["v1", "v2"]


def test_a_child_valued_v_inside_an_akte_valued_a_stays_behind() -> None:
    """A Vorgang valued V is cut from the Akte that goes to the archive."""
    selected = select_archived(_tree(), {"akte": "A", "v2": "V"}, None)
    assert selected is not None
    assert [k.daten.uuid for k in selected.kinder] == ["v1"]


def test_an_akte_not_valued_a_is_not_selected() -> None:
    """An Akte valued V or B is not handed over at all."""
    assert select_archived(_tree(), {"akte": "V"}, None) is None
    assert select_archived(_tree(), {"akte": "B"}, None) is None


def test_the_0503_check_refuses_an_object_not_valued_a() -> None:
    """Handing over a tree with a V-valued child is what the archive would refuse."""
    with pytest.raises(AussonderungRefused, match="v2 would go into the 0503 but is valued V"):
        check_aussonderung([_tree()], {"akte": "A", "v2": "V"})


def test_depth_counts_the_levels_of_a_tree() -> None:
    """Akte > Vorgang > Dokument is three levels deep."""
    assert depth(_tree()) == 3


def test_an_answer_is_named_in_the_style_of_the_archives_own_file() -> None:
    """The 0505 follows the short name the archive used for its 0502."""
    name = answer_name("p1", TYP_0505, "p1_0502.zip", "long")
    assert name == "p1_0505.zip"


def test_without_an_archive_file_the_configured_style_names_the_answer() -> None:
    """x-man's long style by default."""
    name = answer_name("p1", TYP_0505, None, "long")
    assert name == "p1_Aussonderung.BewertungEmpfangBestaetigen.0505.zip"


def test_a_wrapped_message_is_the_same_zip_each_time() -> None:
    """Wrapping is deterministic, so a redelivery uploads identical bytes."""
    first = wrap_message(b"<x/>", "p1_0505.xml")
    assert first == wrap_message(b"<x/>", "p1_0505.xml")
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.namelist() == ["p1_0505.xml"]
        assert archive.read("p1_0505.xml") == b"<x/>"
