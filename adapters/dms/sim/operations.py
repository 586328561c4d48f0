"""The dmsin operations the simulator carries out, on its SQLite store.

Each handler takes the request values (as zeep read them from the validated body)
and returns the response values; zeep writes them in the schema's order. A
refusal is a ``Business`` error, answered as a normal response with ``status`` and
``errormessage`` as the interface does (status 0 means success).

Simulated semantics (what the WSDL does not say, chosen to match the eGov-Suite
as far as its interface documentation goes):

* ``referrednumber`` names the parent: a Vorgang's Akte (or, for deeper xdomea
  structure, another Vorgang), a Dokument's Vorgang or Akte, a content object's
  Dokument. An Akte is filed under an Aktenplaneintrag (``apentry``).
* ``userformsdata`` and ``UpdateBusinessDataValueGI`` write the same per-object
  Fachdaten; ``SearchObjNameGI`` with ``reference``/``value`` finds objects whose
  Fachdatum equals the value; ``searchstring`` matches ``objname`` with ``*``/``?``.
* ``SetDisposalScheduleDateGI`` keeps the date as the Fachdatum ``offltscheduled``
  (ISO 8601), so tests read it like any Fachdatum.
* Read operations list children (``giobjecttype``) and content objects
  (``gimetadatatype``) in creation order; cancelled objects are gone.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from datetime import datetime
from typing import Any

from adapters.dms import dmsin_names as names
from adapters.dms.sim.store import Objekt, Store

Handler = Callable[[Store, Any], dict[str, Any]]

STATUS_NOT_FOUND = 1
STATUS_INVALID = 2


class Business(Exception):
    """A refusal answered with a non-zero status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------- helpers


def _f(name: str) -> str:
    return names.field(name)


def _userforms(values: Any) -> dict[str, str]:
    data = getattr(values, "userformsdata", None)
    entries = getattr(data, _f("GIUserFormsType"), None) or []
    result: dict[str, str] = {}
    for entry in entries:
        strings = getattr(getattr(entry, _f("ufvalue"), None), "string", None) or []
        result[getattr(entry, _f("ufreference"))] = "".join(strings)
    return result


def _get(store: Store, address: str | None, what: str, classes: frozenset[str]) -> Objekt:
    objekt = store.get(address) if address else None
    if objekt is None:
        raise Business(STATUS_NOT_FOUND, f"{what} {address!r} nicht gefunden")
    if objekt.objclass not in classes:
        raise Business(
            STATUS_INVALID,
            f"{what} {address!r} ist ein Objekt der Klasse {objekt.objclass}, erwartet: "
            + ", ".join(sorted(classes)),
        )
    return objekt


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _datetime(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _refs(objekte: list[Objekt]) -> dict[str, Any]:
    return {
        _f("GIObjectType"): [
            {_f("objname"): o.objname, _f("objaddress"): o.address} for o in objekte
        ]
    }


def _metadata(o: Objekt) -> dict[str, Any]:
    return {
        _f("objaddress"): o.address,
        _f("filename"): o.fields.get("filename"),
        _f("fileextension"): o.fields.get("fileextension"),
        _f("objclass"): o.objclass,
        _f("contsize"): o.fields.get("contsize"),
        _f("objcreatedat"): _datetime(o.created_at),
    }


def _ok(**values: Any) -> dict[str, Any]:
    return {"status": 0, **values}


def _content_name(attachment: Any) -> tuple[str, str | None]:
    filename = getattr(attachment, _f("filename"), None)
    extension = getattr(attachment, _f("fileextension"), None)
    if not filename:
        raise Business(STATUS_INVALID, "LHMBAI_15_1700_filename fehlt")
    return filename, extension


def _store_content(store: Store, parent: str, attachment: Any) -> Objekt:
    filename, extension = _content_name(attachment)
    content = getattr(attachment, _f("filecontent"), None) or b""
    declared = getattr(attachment, _f("contsize"), None)
    if declared not in (None, "") and str(declared) != str(len(content)):
        raise Business(
            STATUS_INVALID,
            f"contsize {declared} passt nicht zum Inhalt ({len(content)} Bytes)",
        )
    objname = f"{filename}.{extension}" if extension else filename
    fields = {"filename": filename, "fileextension": extension, "contsize": str(len(content))}
    return store.create(names.INHALT, parent, objname, fields, {}, content)


# --------------------------------------------------------------------------- create

_CONTAINERS = frozenset({names.AKTE, names.VORGANG})


def create_file(store: Store, v: Any) -> dict[str, Any]:
    """CreateFileGI: an Akte under an Aktenplaneintrag."""
    apentry = _get(store, v.apentry, "Aktenplaneintrag", frozenset({names.AKTENPLANEINTRAG}))
    fields = {
        "apentry": apentry.address,
        "shortname": v.shortname,
        "filesubj": v.filesubj,
        "objterms": v.objterms,
        "accdef": v.accdef,
        "fileouobj": v.fileouobj,
        "fileruntimefrom": _iso(v.fileruntimefrom),
        "fileruntimetill": _iso(v.fileruntimetill),
    }
    objname = f"{apentry.objname} {v.shortname or v.filesubj or 'Akte'}"
    objekt = store.create(names.AKTE, None, objname, fields, _userforms(v))
    return _ok(objid=objekt.address, objname=objekt.objname)


def create_procedure(store: Store, v: Any) -> dict[str, Any]:
    """CreateProcedureGI: a Vorgang in an Akte (or in a Vorgang)."""
    parent = _get(store, v.referrednumber, "referrednumber", _CONTAINERS)
    fields = {
        "shortname": v.shortname,
        "filesubj": v.filesubj,
        "procremark": v.procremark,
        "filetype": v.filetype,
        "objterms": v.objterms,
        "accdef": v.accdef,
        "fileruntimefrom": _iso(v.fileruntimefrom),
        "fileruntimetill": _iso(v.fileruntimetill),
    }
    objname = v.shortname or v.filesubj or "Vorgang"
    objekt = store.create(names.VORGANG, parent.address, objname, fields, _userforms(v))
    return _ok(objid=objekt.address, objname=objekt.objname)


def _create_document(store: Store, v: Any, objclass: str, fields: dict[str, Any]) -> dict[str, Any]:
    parent = None
    if v.referrednumber:
        parent = _get(store, v.referrednumber, "referrednumber", _CONTAINERS).address
    objname = v.shortname or v.filesubj or "Dokument"
    objekt = store.create(objclass, parent, objname, fields, _userforms(v))
    attachments = getattr(v.giattachmenttype, _f("GIAttachmentType"), None) or []
    contents = [_store_content(store, objekt.address, a) for a in attachments]
    return _ok(objid=objekt.address, objname=objekt.objname, giobjecttype=_refs(contents))


def create_incoming(store: Store, v: Any) -> dict[str, Any]:
    """CreateIncomingGI: an Eingang (incoming letter), optionally with content objects."""
    fields = {
        "shortname": v.shortname,
        "filesubj": v.filesubj,
        "foreignnr": v.foreignnr,
        "delivery": _iso(v.delivery),
        "documentremarks": v.documentremarks,
        "incattachments": v.incattachments,
        "objterms": v.objterms,
        "accdef": v.accdef,
    }
    return _create_document(store, v, names.EINGANG, fields)


def create_internal(store: Store, v: Any) -> dict[str, Any]:
    """CreateInternalGI: an internal document, optionally with content objects."""
    fields = {
        "shortname": v.shortname,
        "filesubj": v.filesubj,
        "deliverydate": _iso(v.deliverydate),
        "subfiletype": v.subfiletype,
        "incattachments": v.incattachments,
        "objterms": v.objterms,
        "accdef": v.accdef,
    }
    return _create_document(store, v, names.INTERN, fields)


def create_content_object(store: Store, v: Any) -> dict[str, Any]:
    """CreateContentObjectGI: a content object (the bytes of one file) in a Dokument."""
    parent = _get(store, v.referrednumber, "referrednumber", names.DOKUMENT_KLASSEN)
    objekt = _store_content(store, parent.address, v.giattachmenttype)
    return _ok(objid=objekt.address)


# --------------------------------------------------------------------------- read


def read_file(store: Store, v: Any) -> dict[str, Any]:
    """ReadFileGI: an Akte's fields and children."""
    o = _get(store, v.objaddress, "objaddress", frozenset({names.AKTE}))
    f = o.fields
    return _ok(
        objname=o.objname,
        apentry=f.get("apentry"),
        fileouobj=f.get("fileouobj"),
        shortname=f.get("shortname"),
        filesubj=f.get("filesubj"),
        giobjecttype=_refs(store.children(o.address)),
        objterms=f.get("objterms"),
        fileruntimefrom=_datetime(f.get("fileruntimefrom")),
        fileruntimetill=_datetime(f.get("fileruntimetill")),
        accdef=f.get("accdef"),
    )


def read_procedure(store: Store, v: Any) -> dict[str, Any]:
    """ReadProcedureGI: a Vorgang's fields and children."""
    o = _get(store, v.objaddress, "objaddress", frozenset({names.VORGANG}))
    f = o.fields
    return _ok(
        objname=o.objname,
        referrednumber=o.parent,
        shortname=f.get("shortname"),
        filesubj=f.get("filesubj"),
        procremark=f.get("procremark"),
        filetype=f.get("filetype"),
        objterms=f.get("objterms"),
        giobjecttype=_refs(store.children(o.address)),
        accdef=f.get("accdef"),
        fileruntimefrom=_datetime(f.get("fileruntimefrom")),
        fileruntimetill=_datetime(f.get("fileruntimetill")),
    )


def read_procedure_objects(store: Store, v: Any) -> dict[str, Any]:
    """ReadProcedureGIObjects: the objects in a Vorgang."""
    o = _get(store, v.objaddress, "objaddress", frozenset({names.VORGANG}))
    return _ok(giobjecttype=_refs(store.children(o.address)))


def read_incoming(store: Store, v: Any) -> dict[str, Any]:
    """ReadIncomingGI: an Eingang's fields and content objects."""
    o = _get(store, v.objaddress, "objaddress", frozenset({names.EINGANG}))
    f = o.fields
    return _ok(
        objname=o.objname,
        referrednumber=o.parent,
        shortname=f.get("shortname"),
        delivery=_datetime(f.get("delivery")),
        foreignnr=f.get("foreignnr"),
        filesubj=f.get("filesubj"),
        documentremarks=f.get("documentremarks"),
        incattachments=f.get("incattachments"),
        objterms=f.get("objterms"),
        gimetadatatype={_f("GIMetadataType"): [_metadata(c) for c in store.children(o.address)]},
        accdef=f.get("accdef"),
    )


def read_internal(store: Store, v: Any) -> dict[str, Any]:
    """ReadInternalGI: an internal document's fields and content objects."""
    o = _get(store, v.objaddress, "objaddress", frozenset({names.INTERN}))
    f = o.fields
    return _ok(
        objname=o.objname,
        referrednumber=o.parent,
        shortname=f.get("shortname"),
        deliverydate=_datetime(f.get("deliverydate")),
        filesubj=f.get("filesubj"),
        subfiletype=f.get("subfiletype"),
        incattachments=f.get("incattachments"),
        objterms=f.get("objterms"),
        gimetadatatype={_f("GIMetadataType"): [_metadata(c) for c in store.children(o.address)]},
        accdef=f.get("accdef"),
    )


def read_document_objects(store: Store, v: Any) -> dict[str, Any]:
    """ReadDocumentGIObjects: the content objects of a Dokument."""
    o = _get(store, v.objaddress, "objaddress", names.DOKUMENT_KLASSEN)
    return _ok(giobjecttype=_refs(store.children(o.address)))


def read_content_object(store: Store, v: Any) -> dict[str, Any]:
    """ReadContentObjectGI: a content object's bytes (base64 on the wire)."""
    o = _get(store, v.objaddress, "objaddress", frozenset({names.INHALT}))
    return _ok(
        referrednumber=o.parent,
        giattachmenttype={
            _f("filename"): o.fields.get("filename"),
            _f("fileextension"): o.fields.get("fileextension"),
            _f("filecontent"): store.content(o.address) or b"",
            _f("contsize"): o.fields.get("contsize"),
        },
    )


def read_content_object_metadata(store: Store, v: Any) -> dict[str, Any]:
    """ReadContentObjectMetaDataGI: a content object's name, size and dates."""
    o = _get(store, v.objaddress, "objaddress", frozenset({names.INHALT}))
    return _ok(referrednumber=o.parent, gimetadatatype=_metadata(o))


def read_metadata_object(store: Store, v: Any) -> dict[str, Any]:
    """ReadMetadataObjectGI: any object's name and class."""
    o = store.get(v.objaddress)
    if o is None:
        raise Business(STATUS_NOT_FOUND, f"objaddress {v.objaddress!r} nicht gefunden")
    return _ok(objname=o.objname, objclass=o.objclass, objcreatedat=_datetime(o.created_at))


# --------------------------------------------------------------------------- search, Fachdaten


def search_obj_name(store: Store, v: Any) -> dict[str, Any]:
    """SearchObjNameGI: objects of a class by name pattern and, optionally, a Fachdatum."""
    pattern = (v.searchstring or "*").replace("%", "*").replace("_", "?")
    classes = names.DOKUMENT_KLASSEN if v.objclass == names.DOKUMENT else frozenset({v.objclass})
    found = [
        o
        for o in store.all()
        if o.objclass in classes
        and fnmatch.fnmatchcase(o.objname, pattern)
        and (not v.reference or o.userforms.get(v.reference) == (v.value or ""))
    ]
    return _ok(giobjecttype=_refs(found))


def _search_containers(store: Store, v: Any, objclass: str) -> dict[str, Any]:
    subject = v.filesubj
    found = [
        o
        for o in store.all()
        if o.objclass == objclass and (not subject or o.fields.get("filesubj") == subject)
    ]
    return _ok(giobjecttype=_refs(found))


def search_file(store: Store, v: Any) -> dict[str, Any]:
    """SearchFileGI: Akten by Betreff (filesubj)."""
    return _search_containers(store, v, names.AKTE)


def search_procedure(store: Store, v: Any) -> dict[str, Any]:
    """SearchProcedureGI: Vorgänge by Betreff (filesubj)."""
    return _search_containers(store, v, names.VORGANG)


def read_user_forms_data(store: Store, v: Any) -> dict[str, Any]:
    """ReadUserFormsDataGI: one Fachdatum of an object."""
    o = store.get(v.objaddress)
    if o is None:
        raise Business(STATUS_NOT_FOUND, f"objaddress {v.objaddress!r} nicht gefunden")
    return _ok(value=o.userforms.get(v.reference))


def update_user_forms_data(store: Store, v: Any) -> dict[str, Any]:
    """UpdateUserFormsDataGI: set Fachdaten of an object."""
    if store.get(v.objaddress) is None:
        raise Business(STATUS_NOT_FOUND, f"objaddress {v.objaddress!r} nicht gefunden")
    store.set_userforms(v.objaddress, _userforms(v))
    return _ok()


def read_business_data_value(store: Store, v: Any) -> dict[str, Any]:
    """ReadBusinessDataValueGI: the same Fachdaten as ReadUserFormsDataGI."""
    return read_user_forms_data(store, v)


def update_business_data_value(store: Store, v: Any) -> dict[str, Any]:
    """UpdateBusinessDataValueGI: set one Fachdatum."""
    if store.get(v.objaddress) is None:
        raise Business(STATUS_NOT_FOUND, f"objaddress {v.objaddress!r} nicht gefunden")
    store.set_userforms(v.objaddress, {v.reference: v.value or ""})
    return _ok()


def set_disposal_schedule_date(store: Store, v: Any) -> dict[str, Any]:
    """SetDisposalScheduleDateGI: kept as the object's Fachdatum ``offltscheduled``."""
    if store.get(v.objaddress) is None:
        raise Business(STATUS_NOT_FOUND, f"objaddress {v.objaddress!r} nicht gefunden")
    store.set_userforms(v.objaddress, {"offltscheduled": _iso(v.offltscheduled) or ""})
    return _ok()


def cancel_object(store: Store, v: Any) -> dict[str, Any]:
    """CancelObjectGI: cancel (stornieren) an object; it disappears from reads and searches."""
    if not store.cancel(v.objaddress):
        raise Business(STATUS_NOT_FOUND, f"objaddress {v.objaddress!r} nicht gefunden")
    return _ok()


#: Every operation the simulator carries out; the WSDL's others answer a SOAP fault.
HANDLERS: dict[str, Handler] = {
    "CreateFileGI": create_file,
    "CreateProcedureGI": create_procedure,
    "CreateIncomingGI": create_incoming,
    "CreateInternalGI": create_internal,
    "CreateContentObjectGI": create_content_object,
    "ReadFileGI": read_file,
    "ReadProcedureGI": read_procedure,
    "ReadProcedureGIObjects": read_procedure_objects,
    "ReadIncomingGI": read_incoming,
    "ReadInternalGI": read_internal,
    "ReadDocumentGIObjects": read_document_objects,
    "ReadContentObjectGI": read_content_object,
    "ReadContentObjectMetaDataGI": read_content_object_metadata,
    "ReadMetadataObjectGI": read_metadata_object,
    "SearchObjNameGI": search_obj_name,
    "SearchFileGI": search_file,
    "SearchProcedureGI": search_procedure,
    "ReadUserFormsDataGI": read_user_forms_data,
    "UpdateUserFormsDataGI": update_user_forms_data,
    "ReadBusinessDataValueGI": read_business_data_value,
    "UpdateBusinessDataValueGI": update_business_data_value,
    "CancelObjectGI": cancel_object,
    "SetDisposalScheduleDateGI": set_disposal_schedule_date,
}
