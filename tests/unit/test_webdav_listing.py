"""Reading a WebDAV PROPFIND multistatus as other servers (Apache, nginx, IIS) write it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.transfer.webdav import _parse_listing
from gateway.errors import TransientDeliveryError

URL = "https://archiv.example/dav/kommune%20a/in/"

_MULTISTATUS = b"""<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:lp1="DAV:">
  <D:response>
    <D:href>/dav/kommune%20a/in/</D:href>
    <D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop>
      <D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  </D:response>
  <D:response>
    <D:href>https://archiv.example/dav/kommune%20a/in/P%C3%BCfung%201_Aussonderung.Aussonderung.0503.zip</D:href>
    <D:propstat><D:prop>
      <D:resourcetype/>
      <lp1:getcontentlength>1234</lp1:getcontentlength>
      <D:getlastmodified>Mon, 23 Nov 2026 14:00:00 GMT</D:getlastmodified>
      <D:getetag>"abc-1234"</D:getetag>
    </D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  </D:response>
  <D:response>
    <D:href>/dav/kommune%20a/in/sub/</D:href>
    <D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop>
      <D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  </D:response>
  <D:response>
    <D:href>/dav/kommune%20a/in/.x.zip.1a2b.part</D:href>
    <D:propstat><D:prop><D:resourcetype/><D:getcontentlength>3</D:getcontentlength></D:prop>
      <D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  </D:response>
  <D:response>
    <D:href>/dav/kommune%20a/in/no-etag.xml</D:href>
    <D:propstat><D:prop><D:resourcetype/><D:getcontentlength>7</D:getcontentlength></D:prop>
      <D:status>HTTP/1.1 200 OK</D:status></D:propstat>
    <D:propstat><D:prop><D:getetag/><D:getlastmodified/></D:prop>
      <D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>
  </D:response>
</D:multistatus>
"""


def test_files_are_listed_with_decoded_names_size_time_and_etag() -> None:
    """Absolute and relative hrefs both give the plain, decoded file name."""
    entries = _parse_listing(_MULTISTATUS, "/dav/kommune%20a/in/", URL)
    assert [(e.name, e.size, e.etag) for e in entries] == [
        ("Püfung 1_Aussonderung.Aussonderung.0503.zip", 1234, '"abc-1234"'),
        ("no-etag.xml", 7, None),
    ]
    assert entries[0].modified == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    assert entries[1].modified is None


def test_the_collection_itself_sub_collections_and_temporary_names_are_left_out() -> None:
    """Only files another system has finished writing under their final name remain."""
    names = [e.name for e in _parse_listing(_MULTISTATUS, "/dav/kommune%20a/in/", URL)]
    assert "in" not in names and "sub" not in names and ".x.zip.1a2b.part" not in names


def test_a_multistatus_with_a_dtd_is_refused() -> None:
    """A server (or something in between) sending entities is not trusted."""
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><D:multistatus xmlns:D="DAV:">&e;</D:multistatus>'
    with pytest.raises(TransientDeliveryError, match="unusable XML"):
        _parse_listing(evil, "/dav/", URL)


def test_an_answer_that_is_no_multistatus_is_transient() -> None:
    """An HTML error page from a proxy is reported, not read as an empty folder."""
    with pytest.raises(TransientDeliveryError, match="not a DAV multistatus"):
        _parse_listing(b"<html><body>Bad gateway</body></html>", "/dav/", URL)
