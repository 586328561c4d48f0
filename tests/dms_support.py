"""Shared pieces of the DMS tests: the simulator on loopback, DMS ports, test containers.

The simulator is the real aiohttp app from ``adapters.dms.sim`` serving the
unchanged WSDL from ``../shared``; the dmsin port talks to it through zeep over
127.0.0.1 like it would to a Fabasoft server.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from adapters.dms import dmsin_names as names
from adapters.dms.destination import DmsImport
from adapters.dms.dmsin import DmsinPort
from adapters.dms.sim.app import create_app
from adapters.xdomea import builders
from adapters.xdomea.container import write_container
from adapters.xdomea.validation import check_message
from contracts.builders import (
    AkteSpec,
    DokumentSpec,
    FormatSpec,
    SchriftgutobjektSpec,
    VersionSpec,
    VorgangSpec,
    primaerdokument_name,
)
from contracts.config import DmsDestination, DmsinConfig
from contracts.xdomea import uuid_key
from tests.conftest import SHARED
from tests.xdomea_specs import ABSENDER, EMPFAENGER

WSDL = SHARED / "wsdl" / "dmsin" / "dmsin-eai-1.10.wsdl"
AKTENPLAN = "63.01 Bauordnung"
TRANSIENT_STATUS = 75


@dataclass
class Sim:
    """A running simulator and its control API."""

    url: str
    session: aiohttp.ClientSession
    aktenplaneintrag: str

    async def objects(self) -> list[dict[str, Any]]:
        """Every live object, apart from Aktenplaneinträge."""
        async with self.session.get(self.url + "_control/objects") as response:
            listing: list[dict[str, Any]] = await response.json()
        return [o for o in listing if o["objclass"] != names.AKTENPLANEINTRAG]

    async def fault(self, **rule: Any) -> None:
        """Inject a fault (see ``adapters.dms.sim.faults``)."""
        async with self.session.post(self.url + "_control/faults", json=rule) as response:
            assert response.status == 201, await response.text()

    async def clear_faults(self) -> None:
        """Remove every injected fault."""
        async with self.session.delete(self.url + "_control/faults") as response:
            assert response.status == 204

    async def calls(self) -> dict[str, Any]:
        """The operations called so far and how many requests are in flight."""
        async with self.session.get(self.url + "_control/calls") as response:
            result: dict[str, Any] = await response.json()
        return result

    async def post(self, body: str | bytes, content_type: str, **headers: str) -> tuple[int, str]:
        """POST a raw SOAP request; status and text of the answer."""
        async with self.session.post(
            self.url, data=body, headers={"Content-Type": content_type, **headers}
        ) as response:
            return response.status, await response.text()


@asynccontextmanager
async def running_sim(data: Path) -> AsyncIterator[Sim]:
    """The simulator on 127.0.0.1 with one Aktenplaneintrag, its store in ``data``."""
    server = TestServer(create_app(WSDL, data, aktenplan=[AKTENPLAN]), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            url = str(server.make_url("/"))
            async with session.post(url + "_control/aktenplan", json={"name": AKTENPLAN}) as r:
                eintrag = (await r.json())["address"]
            yield Sim(url=url, session=session, aktenplaneintrag=eintrag)
    finally:
        await server.close()


def dmsin_config(sim: Sim, **overrides: Any) -> DmsinConfig:
    """A dmsin configuration pointing at ``sim``, with short timeouts for tests."""
    values: dict[str, Any] = {
        "wsdl": sim.url + "?wsdl",
        "userlogin": "svc-ikz-gateway",
        "connect_timeout_seconds": 2.0,
        "read_timeout_seconds": 5.0,
        "transient_status": (TRANSIENT_STATUS,),
    }
    values.update(overrides)
    return DmsinConfig(**values)


def dmsin_destination(sim: Sim, **overrides: Any) -> DmsImport:
    """A ``dms`` destination filing into ``sim`` under its Aktenplaneintrag."""
    config = DmsDestination(
        type="dms",
        backend="dmsin",
        dmsin=dmsin_config(sim, **overrides),
        aktenplan={"63.01": sim.aktenplaneintrag},
    )
    return DmsImport("dms-b", config, DmsinPort(config.dmsin))  # type: ignore[arg-type]


def filesystem_destination(directory: Path) -> DmsImport:
    """A ``dms`` destination filing into the filesystem DMS at ``directory``."""
    directory.mkdir(exist_ok=True)
    return DmsImport("dms-b", DmsDestination(type="dms", backend="filesystem", directory=directory))


# --------------------------------------------------------------------------- containers


def datei(name: str, *, code: str = "018", version: str = "1.7") -> FormatSpec:
    """A format entry with a fresh UUID-prefixed file name."""
    return FormatSpec(dateiname=primaerdokument_name(name), code=code, version=version)


def bauakte() -> AkteSpec:
    """An Akte with every nesting the DMS import maps, in xdomea 3.x form.

    Akte (Kennzeichen under 63.01) > Eingang with fremdem Geschäftszeichen,
    Vorgang > (internal Dokument, Dokument with two versions and formats,
    Teilvorgang > Dokument), Teilakte > Dokument.
    """
    return AkteSpec(
        betreff="Bauantrag Musterstraße 1",
        kennzeichen="63.01.02/2024",
        dokumente=(
            DokumentSpec(
                betreff="Antrag (Posteingang)",
                fremdes_geschaeftszeichen="B-2024/117",
                posteingangsdatum=date(2024, 3, 4),
                versionen=(VersionSpec(formate=(datei("antrag.pdf"),)),),
            ),
        ),
        vorgaenge=(
            VorgangSpec(
                betreff="Prüfung",
                kennzeichen="63.01.02/2024-1",
                dokumente=(
                    DokumentSpec(
                        betreff="Vermerk",
                        versionen=(VersionSpec(formate=(datei("vermerk.pdf"),)),),
                    ),
                    DokumentSpec(
                        betreff="Bescheid",
                        kennzeichen="63.01.02/2024-1-7",
                        versionen=(
                            VersionSpec(nummer="1", formate=(datei("bescheid-v1.pdf"),)),
                            VersionSpec(
                                nummer="2",
                                formate=(
                                    datei("bescheid-v2.pdf", code="044", version="1b"),
                                    datei("bescheid-v2.docx", code="035", version="2016"),
                                ),
                            ),
                        ),
                    ),
                ),
                teilvorgaenge=(
                    VorgangSpec(
                        betreff="Nachforderung",
                        dokumente=(
                            DokumentSpec(
                                betreff="Nachforderung",
                                versionen=(VersionSpec(formate=(datei("nachf.pdf"),)),),
                            ),
                        ),
                    ),
                ),
            ),
        ),
        teilakten=(
            AkteSpec(
                betreff="Statik",
                dokumente=(
                    DokumentSpec(
                        betreff="Statik",
                        versionen=(VersionSpec(formate=(datei("statik.pdf"),)),),
                    ),
                ),
            ),
        ),
    )


def kleine_akte() -> AkteSpec:
    """A small Akte for the fault matrix: Akte > Vorgang > (intern 1 file, Eingang 2 files)."""
    return AkteSpec(
        betreff="Gewerbeanmeldung",
        kennzeichen="63.01.09/2024",
        vorgaenge=(
            VorgangSpec(
                betreff="Anmeldung",
                dokumente=(
                    DokumentSpec(
                        betreff="Vermerk",
                        versionen=(VersionSpec(formate=(datei("vermerk.pdf"),)),),
                    ),
                    DokumentSpec(
                        betreff="Anmeldung",
                        fremdes_geschaeftszeichen="GA-1",
                        versionen=(
                            VersionSpec(
                                formate=(
                                    datei("anmeldung.pdf"),
                                    datei("anmeldung.odt", code="015", version="1.2"),
                                )
                            ),
                        ),
                    ),
                ),
            ),
        ),
    )


@dataclass(frozen=True)
class Behaelter:
    """A written container, its bytes and the SHA-256 of every primary document."""

    path: Path
    data: bytes
    prozess_id: str
    documents: dict[str, str]


def container(
    folder: Path,
    objekte: Sequence[SchriftgutobjektSpec],
    pdf: bytes,
    *,
    version: str = "3.1.0",
) -> Behaelter:
    """A 0401 container of ``objekte``; every document distinct bytes built on a real PDF."""
    xml = builders.build_abgabe_0401(version, objekte, absender=ABSENDER, empfaenger=EMPFAENGER)
    return container_from_xml(folder, xml, pdf)


def container_from_xml(folder: Path, xml: bytes, pdf: bytes) -> Behaelter:
    """A container of the message ``xml``; every document distinct bytes built on a real PDF."""
    nachricht = check_message(xml).read()
    documents = {
        name: pdf + f"\n% {index} {name}\n".encode()
        for index, name in enumerate(nachricht.dateinamen())
    }
    path, entries = write_container(folder, xml, documents)
    return Behaelter(
        path=path,
        data=path.read_bytes(),
        prozess_id=nachricht.kopf.prozess_id,
        documents={e.name: e.sha256 for e in entries if e.role == "primaerdokument"},
    )


def sha256(data: bytes) -> str:
    """Hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- expectations


def all_specs(objekte: Sequence[SchriftgutobjektSpec]) -> list[SchriftgutobjektSpec]:
    """Every object of the tree, depth first."""
    found: list[SchriftgutobjektSpec] = []
    for objekt in objekte:
        found.append(objekt)
        found.extend(all_specs(objekt.kinder))
    return found


def assert_exactly_filed(
    objects: list[dict[str, Any]],
    objekte: Sequence[SchriftgutobjektSpec],
    documents: dict[str, str],
) -> None:
    """The simulator holds each object and document of the tree once, correctly nested, nothing else."""
    by_address = {o["address"]: o for o in objects}
    uuids = [o["userforms"].get("xdomea_uuid") for o in objects if o["objclass"] != names.INHALT]
    expected = sorted(uuid_key(s.uuid) for s in all_specs(objekte))
    assert sorted(u for u in uuids if u) == expected, "objects missing or duplicated"
    assert None not in uuids, "an object without xdomea UUID (an orphan of a failed create)"
    contents = [o for o in objects if o["objclass"] == names.INHALT]
    names_stored = sorted(
        f"{o['fields']['filename']}.{o['fields']['fileextension']}" for o in contents
    )
    assert names_stored == sorted(documents), "documents missing or duplicated"
    for content in contents:
        name = f"{content['fields']['filename']}.{content['fields']['fileextension']}"
        assert content["sha256"] == documents[name], f"{name} is not bit-identical"
    uuid_of = {o["address"]: o["userforms"].get("xdomea_uuid") for o in objects}
    for spec in all_specs(objekte):
        for kind in spec.kinder:
            (child,) = [o for o in objects if uuid_of[o["address"]] == uuid_key(kind.uuid)]
            assert uuid_of[child["parent"]] == uuid_key(spec.uuid), "wrongly nested"
    for o in objects:
        if o["parent"] is not None:
            assert o["parent"] in by_address, "an object whose parent is gone"
