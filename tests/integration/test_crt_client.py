"""The CRT control client against the real server: the same answers and errors as boto3's."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from airflow_s3pput.crt_client import CrtS3Client
from airflow_s3pput.engine import bucket_error
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.testing.local_s3 import LocalS3Server, free_port

MiB = 1024**2


@pytest.fixture
def crt(s3_server: LocalS3Server, bucket: str) -> Iterator[CrtS3Client]:
    client = CrtS3Client(s3_server.connection(), bucket)
    yield client
    client.close()


def all_pages(client: Any, bucket: str, **kwargs: Any) -> list[dict[str, Any]]:
    pages, token = [], ""
    while True:
        page = client.list_objects_v2(
            Bucket=bucket, **kwargs, **({"ContinuationToken": token} if token else {})
        )
        pages.append(page)
        token = page.get("NextContinuationToken", "")
        if not page["IsTruncated"]:
            return pages


def comparable(pages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            page.get("Prefix"),
            page.get("Delimiter"),
            page["IsTruncated"],
            [(o["Key"], o["Size"], o["ETag"]) for o in page.get("Contents", [])],
            [p["Prefix"] for p in page.get("CommonPrefixes", [])],
        )
        for page in pages
    ]


def test_listing_pages_equal_boto3s_for_awkward_keys(crt: CrtS3Client, s3_client: Any, bucket: str) -> None:
    keys = ["p/a b/c+d", "p/é/ü.txt", "p/100%/x", "p/q?x=1&y=2", "p/t~*()!'@$", "p/<&>.txt", "p/top", "other"]
    for number, key in enumerate(keys):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"x" * number)
    for kwargs in (
        {"Prefix": "p/", "MaxKeys": 3},
        {"Prefix": "p/", "Delimiter": "/"},
        {"Prefix": "p/é/"},
        {"Prefix": "p/", "StartAfter": "p/a b/c+d", "Delimiter": "/", "MaxKeys": 2},
    ):
        ours = comparable(all_pages(crt, bucket, **kwargs))
        assert ours == comparable(all_pages(s3_client, bucket, **kwargs))
    listed = [o["Key"] for page in all_pages(crt, bucket, Prefix="p/", MaxKeys=3) for o in page["Contents"]]
    assert sorted(listed) == sorted(k for k in keys if k.startswith("p/"))


def test_multipart_upload_keeps_each_parts_md5_and_the_multipart_etag(
    crt: CrtS3Client, s3_client: Any, bucket: str
) -> None:
    parts = [b"a" * (5 * MiB), b"b" * 1000]
    upload_id = crt.create_multipart_upload(Bucket=bucket, Key="big", ContentType="application/x-test")[
        "UploadId"
    ]
    listed = crt.list_multipart_uploads(Bucket=bucket, Prefix="big")["Uploads"]
    assert {"Key": "big", "UploadId": upload_id} in listed
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as raised:
        crt.upload_part(
            Bucket=bucket, Key="big", UploadId=upload_id, PartNumber=1, Body=parts[0], ContentMD5=wrong
        )
    assert raised.value.response["Error"]["Code"] == "BadDigest"
    etags = []
    for number, data in enumerate(parts, start=1):
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        etags.append(
            crt.upload_part(
                Bucket=bucket, Key="big", UploadId=upload_id, PartNumber=number, Body=data, ContentMD5=md5
            )["ETag"]
        )
    assert [e.strip('"') for e in etags] == [hashlib.md5(d).hexdigest() for d in parts]
    done = crt.complete_multipart_upload(
        Bucket=bucket,
        Key="big",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]},
    )
    joined = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts)).hexdigest()
    assert done["ETag"].strip('"') == f"{joined}-2"
    stored = s3_client.get_object(Bucket=bucket, Key="big")
    assert stored["Body"].read() == b"".join(parts)
    assert stored["ContentType"] == "application/x-test"


def test_an_aborted_upload_leaves_nothing(crt: CrtS3Client, s3_client: Any, bucket: str) -> None:
    upload_id = crt.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    crt.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=upload_id)
    assert crt.list_multipart_uploads(Bucket=bucket, Prefix="gone")["Uploads"] == []
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket)


def test_errors_read_as_boto3s(s3_server: LocalS3Server, bucket: str) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    client = CrtS3Client(s3_server.connection(), missing)
    try:
        with pytest.raises(ClientError) as raised:
            client.head_bucket(Bucket=missing)
    finally:
        client.close()
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert bucket_error(raised.value, missing, "here") == f"bucket {missing!r} does not exist at here"

    forged = CrtS3Client(
        s3_server.connection(secret_key="wrong"),
        bucket,
    )
    try:
        with pytest.raises(ClientError) as raised:
            forged.list_objects_v2(Bucket=bucket, Prefix="")
    finally:
        forged.close()
    assert raised.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert "wrong" not in str(raised.value)


def test_an_unreachable_endpoint_is_a_connection_error() -> None:
    settings = ConnectionSettings(
        endpoint_url=f"http://127.0.0.1:{free_port()}", access_key="a", secret_key="b", max_attempts=2
    )
    client = CrtS3Client(settings, "b")
    try:
        with pytest.raises(EndpointConnectionError):
            client.head_bucket(Bucket="b")
    finally:
        client.close()


def test_a_client_serves_its_own_bucket_only(crt: CrtS3Client) -> None:
    with pytest.raises(ValueError, match="serves bucket"):
        crt.head_bucket(Bucket="another")
