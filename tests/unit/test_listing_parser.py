"""The one-pass ListObjectsV2 parser returns what botocore's own parser returns, for the fields it keeps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

import botocore.session
import pytest
from botocore.parsers import RestXMLParser

from airflow_s3pput.transport.listing_parser import page_from_xml, page_of, parse_list_objects_v2

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

KEPT_OBJECT_FIELDS = {"Key", "ETag", "Size", "LastModified", "StorageClass"}


def botocore_parse(body: str) -> dict[str, Any]:
    model = botocore.session.get_session().get_service_model("s3")
    shape = model.operation_model("ListObjectsV2").output_shape
    parsed = RestXMLParser(timestamp_parser=str).parse(
        {"body": body.encode(), "headers": {}, "status_code": 200}, shape
    )
    parsed.pop("ResponseMetadata", None)
    for obj in parsed.get("Contents", []):
        for field in set(obj) - KEPT_OBJECT_FIELDS:
            del obj[field]
    return parsed


@pytest.mark.parametrize("body", [PAGE, LAST_PAGE, EMPTY], ids=["page", "url-encoded", "empty"])
def test_matches_botocore(body: str) -> None:
    ours = parse_list_objects_v2(body.encode())
    assert ours == botocore_parse(body)


def test_sizes_are_ints_and_etags_keep_their_quotes() -> None:
    parsed = parse_list_objects_v2(PAGE.encode())
    assert parsed["Contents"][1]["Size"] == 52_428_800_000
    assert parsed["Contents"][0]["ETag"] == '"94b99a13ea747dcfa87568226d5574d8"'
    assert parsed["Contents"][0]["Key"] == 'p/a & b <c> "d" é'
    assert parsed["IsTruncated"] is True


@pytest.mark.parametrize("parse", [parse_list_objects_v2, page_from_xml], ids=["dict", "page"])
@pytest.mark.parametrize(
    "body",
    [
        b"<Error><Code>InternalError</Code><Message>boom</Message></Error>",
        b"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
    ],
    ids=["error-document", "object-without-key"],
)
def test_refuses_what_it_does_not_understand(parse: Callable[[bytes], object], body: bytes) -> None:
    with pytest.raises(ValueError):
        parse(body)


def _decoded(parsed: dict[str, Any]) -> dict[str, Any]:
    """What botocore's handler does after parsing when the keys came URL-encoded."""
    if parsed.get("EncodingType") == "url":
        for obj in parsed.get("Contents", []):
            obj["Key"] = unquote_plus(obj["Key"])
        for common in parsed.get("CommonPrefixes", []):
            common["Prefix"] = unquote_plus(common["Prefix"])
    return parsed


NO_NAMESPACE = PAGE.replace(f" {NS}", "").replace(
    "<Delimiter>/</Delimiter>", "<EncodingType>url</EncodingType>"
)


@pytest.mark.parametrize(
    "body", [PAGE, LAST_PAGE, EMPTY, NO_NAMESPACE], ids=["page", "url-encoded", "empty", "no-namespace"]
)
def test_page_from_xml_is_the_page_botocore_gives(body: str) -> None:
    page = page_from_xml(body.encode())
    assert page == page_of(_decoded(botocore_parse(body)))
    assert page.objects or body is EMPTY


def test_page_from_xml_decodes_keys_and_prefixes_only_when_the_server_encoded_them() -> None:
    assert page_from_xml(LAST_PAGE.encode()).objects[0].key == "p/x+y"
    page = page_from_xml(PAGE.encode())  # not encoded: a "+" or "%" in a key is the key's own
    assert page.objects[0].key == 'p/a & b <c> "d" é'
    assert page.prefixes == ["p/sub/", "p/z z/"]
    assert page.next_token == "tok+/="
    assert page_from_xml(NO_NAMESPACE.encode()).prefixes == ["p/sub/", "p/z z/"]


SEAWEED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f"<ListBucketResult {NS}><Name>b</Name><Prefix>p/</Prefix><MaxKeys>1000</MaxKeys>"
    "<IsTruncated>true</IsTruncated><Contents><Key>p/a</Key><ETag>&#34;94b99a13ea747dcfa87568226d5574d8&#34;</ETag>"
    "<Size>2124</Size><StorageClass>STANDARD</StorageClass><LastModified>2026-12-02T00:43:47Z</LastModified>"
    "</Contents><Contents><Key>p/b &amp; c</Key><ETag>&#34;0123456789abcdef0123456789abcdef-3&#34;</ETag>"
    "<Size>7</Size></Contents><NextContinuationToken>next</NextContinuationToken></ListBucketResult>"
)


@pytest.mark.parametrize(
    "body", [PAGE, LAST_PAGE, EMPTY, NO_NAMESPACE, SEAWEED], ids=["page", "url", "empty", "no-ns", "seaweed"]
)
def test_plain_pages_are_cut_without_elementtree_and_read_as_it_reads_them(body: str) -> None:
    from airflow_s3pput.transport.listing_parser import _plain_page, _tree_page

    plain = _plain_page(body.encode())
    assert plain is not None
    assert plain == _tree_page(body.encode())


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
        SEAWEED.replace("<Contents><Key>p/b &amp; c</Key>", "<Contents><Key>p/b</Key><Key>p/c</Key>"),
        SEAWEED.replace("<IsTruncated>true</IsTruncated>", "<IsTruncated>\ntrue </IsTruncated>"),
    ],
    ids=[
        "cdata",
        "comment",
        "attribute",
        "markup-in-key",
        "spaced-size",
        "root-attribute",
        "prefixed",
        "two-keys",
        "spaced-flag",
    ],
)
def test_a_page_of_another_shape_is_read_by_elementtree(body: str) -> None:
    from airflow_s3pput.transport.listing_parser import _plain_page, _tree_page

    try:
        plain = _plain_page(body.encode())
    except ValueError:
        plain = None
    assert plain is None or plain == _tree_page(body.encode())
    assert page_from_xml(body.encode()) == _tree_page(body.encode())


@pytest.mark.parametrize("cut", [40, len(SEAWEED) // 2, len(SEAWEED) - 3], ids=["head", "middle", "end"])
def test_a_truncated_page_is_refused_not_read_short(cut: int) -> None:
    from xml.etree.ElementTree import ParseError

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


@pytest.mark.parametrize("seed", range(40))
def test_pages_of_every_shape_read_as_elementtree_reads_them(seed: int) -> None:
    """Pages of objects cut by one pattern (all alike) or one by one (any differs), against
    ElementTree's reading: field orders of several servers, entities, URL-encoded keys."""
    import random

    from airflow_s3pput.transport.listing_parser import _tree_page

    rng = random.Random(seed)
    uniform = seed % 2 == 0
    order, key_pool, etag_pool = rng.choice(ORDERS), KEYS[:3], ETAGS[:5]
    objects = []
    for i in range(rng.randint(1, 30)):
        if not uniform:
            order, key_pool, etag_pool = rng.choice(ORDERS), KEYS, ETAGS
        key = f"{rng.choice(key_pool)}/{i:03}"
        etag = rng.choice(etag_pool).format(f"{rng.getrandbits(128):032x}")
        objects.append(_contents(key, etag, rng.randint(0, 10**12), order, pretty=seed % 4 < 2))
    encoding = "<EncodingType>url</EncodingType>" if rng.random() < 0.5 else ""
    prefixes = "<CommonPrefixes><Prefix>p/sub/</Prefix></CommonPrefixes>" if rng.random() < 0.5 else ""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult {NS}><Name>b</Name>'
        f"<Prefix>p/</Prefix><IsTruncated>true</IsTruncated>{encoding}{''.join(objects)}{prefixes}"
        "<NextContinuationToken>t</NextContinuationToken></ListBucketResult>"
    ).encode()
    assert page_from_xml(body) == _tree_page(body)


def test_a_page_of_one_shape_is_cut_by_one_pattern() -> None:
    from airflow_s3pput.transport.listing_parser import _PLAIN_ROOT, _uniform_contents

    def page(*keys: str) -> bytes:
        objects = "".join(_contents(k, "&#34;" + "a" * 32 + "&#34;", 7, "KESCL", False) for k in keys)
        return f"<ListBucketResult {NS}><IsTruncated>false</IsTruncated>{objects}</ListBucketResult>".encode()

    body = page("p/a", "p/b")
    cut = _uniform_contents(body, _PLAIN_ROOT.match(body).end(), 2, url=False)  # type: ignore[union-attr]
    assert cut is not None and [(o.key, o.etag) for o in cut[0]] == [("p/a", "a" * 32), ("p/b", "a" * 32)]
    body = page("p/a", "p/b &amp; c")  # an entity in a key: read one by one
    assert _uniform_contents(body, _PLAIN_ROOT.match(body).end(), 2, url=False) is None  # type: ignore[union-attr]
    assert page_from_xml(body).objects[1].key == "p/b & c"
