"""Demo data: two Kommunen, an Akte to hand over, and small real PDF documents.

Nothing here comes from third-party material; the PDFs are written by
``simple_pdf`` so the demo runs on a machine without ``../shared``.
"""

from __future__ import annotations

from contracts.builders import AkteSpec, DokumentSpec, VorgangSpec, primaerdokument_name
from contracts.xdomea import Behoerdenkennung, Kontakt

KOMMUNE_A = Kontakt(
    behoerdenkennung=Behoerdenkennung(
        praefix="060", praefix_name="Kommune", kennung="0815", kennung_name="Gemeinde Adorf"
    ),
    institution="Gemeinde Adorf, Bauamt",
    institution_kurz="BA",
)
KOMMUNE_B = Kontakt(
    behoerdenkennung=Behoerdenkennung(
        praefix="060", praefix_name="Kommune", kennung="4711", kennung_name="Stadt Bestadt"
    ),
    institution="Stadt Bestadt, Bauordnungsamt",
    institution_kurz="BOA",
)


def simple_pdf(text: str) -> bytes:
    """A valid one-page PDF 1.4 showing ``text`` (ASCII), with a correct xref table."""
    safe = text.encode("ascii", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(")
    safe = safe.replace(b")", b"\\)")
    stream = b"BT /F1 18 Tf 72 720 Td (" + safe + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    out += trailer.encode()
    return bytes(out)


def bauakte() -> tuple[AkteSpec, dict[str, bytes]]:
    """An Akte with two Vorgänge and three documents, and the documents' bytes by file name."""
    documents: dict[str, bytes] = {}

    def dokument(betreff: str, stem: str) -> DokumentSpec:
        name = primaerdokument_name(f"{stem}.pdf")
        documents[name] = simple_pdf(f"Gemeinde Adorf - {betreff}")
        return DokumentSpec.with_file(name, betreff=betreff)

    akte = AkteSpec(
        betreff="Bauantrag Lindenweg 3, Neubau Einfamilienhaus",
        kennzeichen="63.1-2026/0042",
        vorgaenge=(
            VorgangSpec(
                betreff="Antrag und Unterlagen",
                kennzeichen="63.1-2026/0042-1",
                dokumente=(
                    dokument("Bauantrag", "Bauantrag"),
                    dokument("Lageplan", "Lageplan"),
                ),
            ),
            VorgangSpec(
                betreff="Stellungnahmen",
                kennzeichen="63.1-2026/0042-2",
                dokumente=(dokument("Stellungnahme Brandschutz", "Stellungnahme_Brandschutz"),),
            ),
        ),
    )
    return akte, documents
