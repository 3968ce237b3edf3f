"""Read the XML documents of S3's answers as the CRT transport receives them: a ListObjectsV2
page into a ``ListPage``, and any element's text.

Element names are matched in S3's namespace or in none, as servers differ. Keys and prefixes are
URL-decoded when the page says ``<EncodingType>url</EncodingType>`` (the CRT transport asks for
it, so that keys XML 1.0 cannot carry still list), as botocore decodes them.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_plus
from xml.etree import ElementTree as ETree

from airflow_s3pput.transport.interface import ListedObject, ListPage, iso_seconds


def text(element: ETree.Element, name: str) -> str:
    """The text of ``element``'s child ``name`` in any namespace, or none; "" when absent."""
    return element.findtext("{*}" + name) or ""


def page_from_xml(body: bytes) -> ListPage:
    """The page in ``body``; ``ValueError`` for XML of another kind (an error document, a
    listed object without a key), ``ETree.ParseError`` for what is not well-formed XML."""
    root = ETree.fromstring(body)
    if root.tag.rpartition("}")[2] != "ListBucketResult":
        raise ValueError(f"not a listing: {root.tag}")
    decode: Callable[[str], str] = unquote_plus if text(root, "EncodingType") == "url" else str
    objects = [_listed(contents, decode) for contents in root.iterfind("{*}Contents")]
    prefixes = [decode(text(common, "Prefix")) for common in root.iterfind("{*}CommonPrefixes")]
    truncated = text(root, "IsTruncated").strip() == "true"
    token = text(root, "NextContinuationToken") if truncated else ""
    return ListPage(objects, prefixes, token or None)


def _listed(contents: ETree.Element, decode: Callable[[str], str]) -> ListedObject:
    key = contents.findtext("{*}Key")
    if key is None:
        raise ValueError("listed object without a key")
    size = int(text(contents, "Size") or 0)
    etag = text(contents, "ETag").strip('"')
    return ListedObject(decode(key), size, etag, iso_seconds(text(contents, "LastModified")))
