"""Parse ListObjectsV2 pages in one pass instead of through botocore's generic model walk.

botocore turns a 1,000-key listing page into Python in about 30 ms of CPU (a shape-driven walk
over every XML node); an ``update`` re-run of an unchanged tree is mostly that. ElementTree plus
a loop over the few fields s3pput reads takes about a quarter of it.

``install(client)`` hooks the client's documented ``before-parse`` event: a successful page is
parsed here into ``customized_response_dict`` (which botocore merges into its result) and the
body botocore then parses is cut to the empty result. Everything else (errors, retries, the
URL decoding of keys, other operations) stays botocore's. A page this parser does not
recognise is left alone for botocore.
"""

from __future__ import annotations

import xml.etree.ElementTree as ETree
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from airflow_s3pput.transport.port import ListedObject, ListPage

EVENT = "before-parse.s3.ListObjectsV2"
_EMPTY_RESULT = b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>'
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

#: top-level elements kept as strings (EncodingType lets botocore URL-decode the keys)
_TEXT_FIELDS = (
    "Name", "Prefix", "Delimiter", "StartAfter", "ContinuationToken", "NextContinuationToken", "EncodingType",
)  # fmt: skip
_INT_FIELDS = ("MaxKeys", "KeyCount")
#: the fields of one listed object this parser returns (Size as int): what s3pput reads, and a
#: little more for people who debug with it
_OBJECT_FIELDS = ("Key", "ETag", "LastModified", "StorageClass")


def install(client: Any) -> None:
    client.meta.events.register(EVENT, _parse_page)


def _parse_page(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not isinstance(body, bytes):
        return
    try:
        parsed = parse_list_objects_v2(body)
    except (ETree.ParseError, ValueError):
        return  # not a page we understand: botocore's parser decides
    customized_response_dict.update(parsed)
    response_dict["body"] = _EMPTY_RESULT


def parse_list_objects_v2(body: bytes) -> dict[str, Any]:
    """A ListBucketResult document as boto3 returns it (for the fields listed above).

    Raises ``ValueError`` if ``body`` is XML of another kind (an error document, say).
    """
    root = ETree.fromstring(body)
    if _local(root.tag) != "ListBucketResult":
        raise ValueError(f"not a listing: {root.tag}")
    parsed: dict[str, Any] = {"IsTruncated": False}
    contents: list[dict[str, Any]] = []
    prefixes: list[dict[str, str]] = []
    for element in root:
        tag = _local(element.tag)
        if tag == "Contents":
            contents.append(_object(element))
        elif tag == "CommonPrefixes":
            prefixes.append({"Prefix": element.findtext("{*}Prefix") or ""})  # in any namespace, or none
        elif tag == "IsTruncated":
            parsed["IsTruncated"] = (element.text or "").strip() == "true"
        elif tag in _TEXT_FIELDS:
            parsed[tag] = element.text or ""
        elif tag in _INT_FIELDS:
            parsed[tag] = int(element.text or 0)
    if contents:
        parsed["Contents"] = contents
    if prefixes:
        parsed["CommonPrefixes"] = prefixes
    return parsed


def page_from_xml(body: bytes) -> ListPage:
    """A ListObjectsV2 document straight to a ``ListPage`` (keys URL-decoded if the server
    encoded them): what ``page_of(parse_list_objects_v2(body))`` gives, for about 30% less CPU
    (no dict per object; an unchanged 100,000-file re-run parses 100 pages).

    Raises ``ValueError`` if ``body`` is XML of another kind (an error document, say).
    """
    root = ETree.fromstring(body)
    namespace = root.tag[: -len("ListBucketResult")]
    if _local(root.tag) != "ListBucketResult":
        raise ValueError(f"not a listing: {root.tag}")
    key_tag, size_tag, etag_tag = namespace + "Key", namespace + "Size", namespace + "ETag"
    decode = unquote_plus if root.findtext(namespace + "EncodingType") == "url" else str
    objects: list[ListedObject] = []
    for element in root.iterfind(namespace + "Contents"):
        key, size, etag = None, "0", ""
        for field in element:
            if field.tag == key_tag:
                key = field.text or ""
            elif field.tag == size_tag:
                size = field.text or "0"
            elif field.tag == etag_tag:
                etag = field.text or ""
        if key is None:
            raise ValueError("listed object without a key")
        objects.append(ListedObject(decode(key), int(size), etag.strip('"')))
    prefixes = [
        decode(common.findtext(namespace + "Prefix") or "")
        for common in root.iterfind(namespace + "CommonPrefixes")
    ]
    truncated = (root.findtext(namespace + "IsTruncated") or "").strip() == "true"
    token = root.findtext(namespace + "NextContinuationToken") if truncated else None
    return ListPage(objects, prefixes, token or None)


def _object(element: ETree.Element) -> dict[str, Any]:
    listed: dict[str, Any] = {}
    for field in element:
        tag = _local(field.tag)
        if tag == "Size":
            listed["Size"] = int(field.text or 0)
        elif tag in _OBJECT_FIELDS:
            listed[tag] = field.text or ""
    if "Key" not in listed:
        raise ValueError("listed object without a key")
    return listed


def _local(tag: str) -> str:
    return tag[len(_NS) :] if tag.startswith(_NS) else tag.rpartition("}")[2]


def page_of(page: Mapping[str, Any]) -> ListPage:
    """A ListObjectsV2 result dict (botocore's shape, or our parser's) as a ``ListPage``."""
    objects = [
        ListedObject(obj["Key"], int(obj["Size"]), str(obj.get("ETag", "")).strip('"'))
        for obj in page.get("Contents", ())
    ]
    prefixes = [common["Prefix"] for common in page.get("CommonPrefixes", ())]
    token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
    return ListPage(objects, prefixes, token or None)
