"""Container and message file names in all three spellings."""

from __future__ import annotations

import pytest

from adapters.xdomea.naming import NamingStyle, parse_name

PID = "242f44e8-bebf-4503-a086-db252c6a4277"


@pytest.mark.parametrize(
    ("name", "code", "style", "element"),
    [
        (f"{PID}_Abgabe.Abgabe.0401.zip", "0401", NamingStyle.LONG, "Abgabe.Abgabe.0401"),
        (
            f"{PID}_Aussonderung.Aussonderung.0503.zip",
            "0503",
            NamingStyle.LONG,
            "Aussonderung.Aussonderung.0503",
        ),
        (f"{PID}_0401_1.zip", "0401", NamingStyle.NUMBERED, None),
        (f"{PID}_0503.zip", "0503", NamingStyle.SHORT, None),
        (f"{PID.upper()}_0503.ZIP", "0503", NamingStyle.SHORT, None),
    ],
)
def test_container_names_parse_to_prozess_id_and_code(
    name: str, code: str, style: NamingStyle, element: str | None
) -> None:
    """Every spelling real senders use yields ProzessID, code and style."""
    parsed = parse_name(name)

    assert parsed is not None
    assert parsed.prozess_id.lower() == PID
    assert (parsed.code, parsed.style, parsed.element) == (code, style, element)


@pytest.mark.parametrize("name", ["report.pdf", f"{PID}.zip", f"{PID}_04011.zip", "../x_0401.zip"])
def test_other_names_are_not_xdomea_names(name: str) -> None:
    """Names without ProzessID and message code are not taken for xdomea files."""
    assert parse_name(name) is None
