"""Read one ListObjectsV2 page, as the CRT transport receives it, into a ``ListPage``.

Element names are matched in S3's namespace or in none, as servers differ. Keys and prefixes are
URL-decoded when the page says ``<EncodingType>url</EncodingType>`` (the CRT transport asks for
it, so that keys XML 1.0 cannot carry still list), as botocore decodes them.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_plus
from xml.etree import ElementTree as ETree

from airflow_s3pput.transport.interface import ListedObject, ListPage, iso_seconds


def page_from_xml(body: bytes) -> ListPage:
    """The page in ``body``; ``ValueError`` for XML of another kind (an error document, a
    listed object without a key), ``ETree.ParseError`` for what is not well-formed XML."""
    root = ETree.fromstring(body)
    if root.tag.rpartition("}")[2] != "ListBucketResult":
        raise ValueError(f"not a listing: {root.tag}")
    decode: Callable[[str], str] = unquote_plus if root.findtext("{*}EncodingType") == "url" else str
    objects = [_listed(contents, decode) for contents in root.iterfind("{*}Contents")]
    prefixes = [decode(common.findtext("{*}Prefix") or "") for common in root.iterfind("{*}CommonPrefixes")]
    truncated = (root.findtext("{*}IsTruncated") or "").strip() == "true"
    token = root.findtext("{*}NextContinuationToken") if truncated else None
    return ListPage(objects, prefixes, token or None)


def _listed(contents: ETree.Element, decode: Callable[[str], str]) -> ListedObject:
    key = contents.findtext("{*}Key")
    if key is None:
        raise ValueError("listed object without a key")
    size = int(contents.findtext("{*}Size") or 0)
    etag = (contents.findtext("{*}ETag") or "").strip('"')
    return ListedObject(decode(key), size, etag, iso_seconds(contents.findtext("{*}LastModified") or ""))
