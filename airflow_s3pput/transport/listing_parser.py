"""Read one ListObjectsV2 page, as the CRT transport receives it, into a ``ListPage``.

The boto3 transport does not need this: botocore parses its pages (``boto3_transport.page_of``).
Element names are matched in S3's namespace or in none, as servers differ. Keys and prefixes are
URL-decoded when the page says ``<EncodingType>url</EncodingType>`` (the CRT transport asks for
it, so that keys XML 1.0 cannot carry still list), as botocore decodes them.
"""

from __future__ import annotations

from urllib.parse import unquote_plus
from xml.etree import ElementTree as ETree

from airflow_s3pput.transport.port import ListedObject, ListPage, iso_seconds


def page_from_xml(body: bytes) -> ListPage:
    """The page in ``body``; ``ValueError`` for XML of another kind (an error document, a
    listed object without a key), ``ETree.ParseError`` for what is not well-formed XML."""
    root = ETree.fromstring(body)
    if _name(root) != "ListBucketResult":
        raise ValueError(f"not a listing: {root.tag}")
    objects: list[ListedObject] = []
    prefixes: list[str] = []
    fields: dict[str, str] = {}
    for element in root:
        name = _name(element)
        if name == "Contents":
            objects.append(_listed(element))
        elif name == "CommonPrefixes":
            prefixes += [element.findtext("{*}Prefix") or ""]
        else:
            fields[name] = element.text or ""
    if fields.get("EncodingType") == "url":
        objects = [obj._replace(key=unquote_plus(obj.key)) for obj in objects]
        prefixes = [unquote_plus(prefix) for prefix in prefixes]
    truncated = fields.get("IsTruncated", "").strip() == "true"
    token = fields.get("NextContinuationToken") if truncated else None
    return ListPage(objects, prefixes, token or None)


def _listed(contents: ETree.Element) -> ListedObject:
    fields = {_name(field): field.text or "" for field in contents}
    if "Key" not in fields:
        raise ValueError("listed object without a key")
    size, etag = int(fields.get("Size") or 0), fields.get("ETag", "").strip('"')
    return ListedObject(fields["Key"], size, etag, iso_seconds(fields.get("LastModified", "")))


def _name(element: ETree.Element) -> str:
    """The element's name without its namespace."""
    return element.tag.rpartition("}")[2]
