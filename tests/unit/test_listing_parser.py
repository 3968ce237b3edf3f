"""A ListObjectsV2 page as the CRT transport reads it is the page botocore gives the boto3
transport: awkward keys, entities, URL-encoded keys, prefixes, empty and truncated pages."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from typing import Any
from xml.etree.ElementTree import ParseError

import botocore.session
import pytest
from botocore.compat import unquote_str
from botocore.parsers import RestXMLParser

from airflow_s3pput.transport.boto3_transport import page_of
from airflow_s3pput.transport.interface import ListPage, http_date_seconds, iso_seconds
from airflow_s3pput.transport.listing_parser import page_from_xml

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'

PAGE = f"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult {NS}><Name>b</Name><Prefix>p/</Prefix><KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys>
<Delimiter>/</Delimiter><IsTruncated>true</IsTruncated><NextContinuationToken>tok+/=</NextContinuationToken>
<Contents><Key>p/a &amp; b &lt;c&gt; &#34;d&#34; é</Key><LastModified>2026-11-25T11:57:15.000Z</LastModified>
<ETag>&#34;94b99a13ea747dcfa87568226d5574d8&#34;</ETag><Size>2124</Size><StorageClass>STANDARD</StorageClass>
<Owner><ID>x</ID><DisplayName>y</DisplayName></Owner></Contents>
<Contents><Key>p/big</Key><ETag>"0123456789abcdef0123456789abcdef-3"</ETag><Size>52428800000</Size></Contents>
<CommonPrefixes><Prefix>p/sub/</Prefix></CommonPrefixes>
<CommonPrefixes><Prefix>p/z z/</Prefix></CommonPrefixes>
</ListBucketResult>"""

LAST_PAGE = f"""<ListBucketResult {NS}><Name>b</Name><Prefix>p/</Prefix><IsTruncated>false</IsTruncated>
<EncodingType>url</EncodingType><Contents><Key>p/x%2By</Key><Size>0</Size><ETag>"e"</ETag></Contents>
</ListBucketResult>"""

EMPTY = f"<ListBucketResult {NS}><Name>b</Name><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount>" + (
    "</ListBucketResult>"
)

NO_NAMESPACE = PAGE.replace(f" {NS}", "").replace(
    "<Delimiter>/</Delimiter>", "<EncodingType>url</EncodingType>"
)


SEAWEED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f"<ListBucketResult {NS}><Name>b</Name><Prefix>p/</Prefix><MaxKeys>1000</MaxKeys>"
    "<IsTruncated>true</IsTruncated><Contents><Key>p/a</Key><ETag>&#34;94b99a13ea747dcfa87568226d5574d8&#34;</ETag>"
    "<Size>2124</Size><StorageClass>STANDARD</StorageClass><LastModified>2026-12-02T00:43:47Z</LastModified>"
    "</Contents><Contents><Key>p/b &amp; c</Key><ETag>&#34;0123456789abcdef0123456789abcdef-3&#34;</ETag>"
    "<Size>7</Size></Contents><NextContinuationToken>next</NextContinuationToken></ListBucketResult>"
)


def botocore_page(body: str | bytes) -> ListPage:
    """The page botocore's parser gives, keys decoded as its handler decodes them."""
    model = botocore.session.get_session().get_service_model("s3")
    shape = model.operation_model("ListObjectsV2").output_shape
    assert shape is not None
    raw = body.encode() if isinstance(body, str) else body
    parsed: dict[str, Any] = RestXMLParser(timestamp_parser=str).parse(
        {"body": raw, "headers": {}, "status_code": 200}, shape
    )
    if parsed.get("EncodingType") == "url":
        for obj in parsed.get("Contents", []):
            obj["Key"] = unquote_str(obj["Key"])
        for common in parsed.get("CommonPrefixes", []):
            common["Prefix"] = unquote_str(common["Prefix"])
    return page_of(parsed)


@pytest.mark.parametrize(
    "body",
    [PAGE, LAST_PAGE, EMPTY, NO_NAMESPACE, SEAWEED],
    ids=["page", "url-encoded", "empty", "no-namespace", "seaweed"],
)
def test_a_page_reads_as_botocore_reads_it(body: str) -> None:
    page = page_from_xml(body.encode())
    assert page == botocore_page(body)
    assert page.objects or body is EMPTY


def test_keys_and_prefixes_are_decoded_only_when_the_server_encoded_them() -> None:
    assert page_from_xml(LAST_PAGE.encode()).objects[0].key == "p/x+y"
    page = page_from_xml(PAGE.encode())  # not encoded: a "+" or "%" in a key is the key's own
    assert page.objects[0].key == 'p/a & b <c> "d" é'
    assert page.prefixes == ["p/sub/", "p/z z/"]
    assert page.next_token == "tok+/="
    assert page_from_xml(NO_NAMESPACE.encode()).prefixes == ["p/sub/", "p/z z/"]


def test_sizes_are_ints_and_etags_lose_their_quotes() -> None:
    page = page_from_xml(PAGE.encode())
    assert page.objects[1].size == 52_428_800_000
    assert page.objects[0].etag == "94b99a13ea747dcfa87568226d5574d8"
    assert page.objects[1].etag == "0123456789abcdef0123456789abcdef-3"


def test_last_modified_is_epoch_seconds_or_none_when_not_listed() -> None:
    page = page_from_xml(PAGE.encode())
    assert (
        page.objects[0].last_modified == datetime(2026, 11, 25, 11, 57, 15, tzinfo=timezone.utc).timestamp()
    )
    assert page.objects[1].last_modified is None
    seaweed = page_from_xml(SEAWEED.encode())  # without the milliseconds
    assert (
        seaweed.objects[0].last_modified == datetime(2026, 12, 2, 0, 43, 47, tzinfo=timezone.utc).timestamp()
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("Sat, 05 Dec 2026 21:04:43 GMT", 1796504683.0, id="http-date"),
        pytest.param("", None, id="missing"),
        pytest.param(None, None, id="none"),
        pytest.param("yesterday", None, id="unreadable"),
    ],
)
def test_the_date_header_reads_as_epoch_seconds(text: str | None, seconds: float | None) -> None:
    assert http_date_seconds(text) == seconds
    if seconds is not None:
        assert iso_seconds("2026-12-05T21:04:43.000Z") == seconds
    assert iso_seconds(text or "") is None


def test_a_page_that_is_not_truncated_has_no_next_token() -> None:
    # A flag spaced out is still the flag: a listing is never cut short for a blank.
    spaced = SEAWEED.replace("<IsTruncated>true</IsTruncated>", "<IsTruncated>\ntrue </IsTruncated>")
    assert page_from_xml(spaced.encode()).next_token == "next"
    assert (
        page_from_xml(SEAWEED.replace("<IsTruncated>true", "<IsTruncated>false").encode()).next_token is None
    )
    assert page_from_xml(EMPTY.encode()) == ListPage([], [], None)


@pytest.mark.parametrize(
    "body",
    [
        b"<Error><Code>InternalError</Code><Message>boom</Message></Error>",
        b"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
    ],
    ids=["error-document", "object-without-key"],
)
def test_refuses_what_is_not_a_listing(body: bytes) -> None:
    with pytest.raises(ValueError):
        page_from_xml(body)


@pytest.mark.parametrize(
    "body",
    [
        SEAWEED.replace("<Key>p/a</Key>", "<Key><![CDATA[p/<a>]]></Key>"),
        SEAWEED.replace("<Size>7</Size>", "<!-- seven --><Size>7</Size>"),
        SEAWEED.replace("<Contents>", '<Contents kind="x">', 1),
        SEAWEED.replace("<Key>p/a</Key>", "<Key>p/<i>a</i></Key>"),
        SEAWEED.replace("<Size>7</Size>", "<Size> 7 </Size>"),
        SEAWEED.replace("<ListBucketResult", '<ListBucketResult extra="1"'),
        SEAWEED.replace(f"<ListBucketResult {NS}>", '<s3:ListBucketResult xmlns:s3="x">').replace(
            "</ListBucketResult>", "</s3:ListBucketResult>"
        ),
    ],
    ids=[
        "cdata",
        "comment",
        "attribute",
        "markup-in-key",
        "spaced-size",
        "root-attribute",
        "prefixed",
    ],
)
def test_pages_in_any_well_formed_spelling_read_as_botocore_reads_them(body: str) -> None:
    assert page_from_xml(body.encode()) == botocore_page(body)


@pytest.mark.parametrize("cut", [40, len(SEAWEED) // 2, len(SEAWEED) - 3], ids=["head", "middle", "end"])
def test_a_truncated_document_is_refused_not_read_short(cut: int) -> None:
    with pytest.raises(ParseError):
        page_from_xml(SEAWEED[:cut].encode())


def _contents(key: str, etag: str, size: int, order: str, pretty: bool) -> str:
    fields = {
        "K": f"<Key>{key}</Key>",
        "E": f"<ETag>{etag}</ETag>",
        "S": f"<Size>{size}</Size>",
        "L": "<LastModified>2026-12-02T05:02:10.000Z</LastModified>",
        "C": "<StorageClass>STANDARD</StorageClass>",
        "O": "<Owner><ID>x</ID><DisplayName>y</DisplayName></Owner>",
    }
    gap = "\n  " if pretty else ""
    return f"<Contents>{gap}" + gap.join(fields[f] for f in order) + f"{gap}</Contents>"


# The field orders of SeaweedFS, AWS, MinIO and moto, and one without an ETag or Size.
ORDERS = ["KESCL", "KLESOC", "KLESOC", "KLESC", "KLC"]
KEYS = ["p/a", "p/b%2Bc", "p/x+y", "p/a &amp; b", "p/é", "p/1%25"]
ETAGS = ["&#34;{}&#34;", "&quot;{}&quot;", '"{}"', "{}", '"{}-3"', "&#34;{}&amp;&#34;"]


@pytest.mark.parametrize("seed", range(20))
def test_pages_of_several_servers_read_as_botocore_reads_them(seed: int) -> None:
    """Field orders of several servers, entities, URL-encoded keys, pretty-printed or not."""
    rng = random.Random(seed)
    objects = []
    for i in range(rng.randint(1, 30)):
        key = f"{rng.choice(KEYS)}/{i:03}"
        etag = rng.choice(ETAGS).format(f"{rng.getrandbits(128):032x}")
        objects.append(_contents(key, etag, rng.randint(0, 10**12), rng.choice(ORDERS), pretty=seed % 2 == 0))
    encoding = "<EncodingType>url</EncodingType>" if rng.random() < 0.5 else ""
    prefixes = "<CommonPrefixes><Prefix>p/sub/</Prefix></CommonPrefixes>" if rng.random() < 0.5 else ""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult {NS}><Name>b</Name>'
        f"<Prefix>p/</Prefix><IsTruncated>true</IsTruncated>{encoding}{''.join(objects)}{prefixes}"
        "<NextContinuationToken>t</NextContinuationToken></ListBucketResult>"
    )
    assert page_from_xml(body.encode()) == botocore_page(body)
