"""The one builder from raw settings to ``UploadOptions``, and the one error vocabulary.

Raw settings arrive as argparse values (the CLI) or rendered templates (Airflow: strings such as
``"16"``, ``"true"``, ``"None"``). Each error names its setting by its canonical name; the CLI
renders it as its flag, the provider as it is.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import pytest

from airflow_s3pput.cli import FLAGS, build_parser, options_from_args, render
from airflow_s3pput.errors import UsageError
from airflow_s3pput.etag import MIB
from airflow_s3pput.option_builder import (
    CONNECTION_SETTINGS,
    UPLOAD_SETTINGS,
    build_bounds,
    build_connection,
    build_options,
    check_known,
)
from airflow_s3pput.options import ConnectionSettings, UploadOptions
from airflow_s3pput.planner import BatchBounds
from airflow_s3pput.transport import default_concurrency
from airflow_s3pput.upload_body import DEFAULT_GZIP_TYPES

BASE: dict[str, Any] = {"bucket": "my-bucket", "source": "/src"}


@pytest.mark.parametrize(
    ("name", "raw", "field", "expected"),
    [
        pytest.param("part_size", "32MiB", "part_size", 32 * MIB, id="size-with-unit"),
        pytest.param("part_size", str(8 * MIB), "part_size", 8 * MIB, id="size-rendered-int"),
        pytest.param("multipart_threshold", 6 * MIB, "multipart_threshold", 6 * MIB, id="size-int"),
        pytest.param("dry_run", "true", "dry_run", True, id="bool-rendered-true"),
        pytest.param("dry_run", "False", "dry_run", False, id="bool-rendered-false"),
        pytest.param("gzip", True, "gzip", True, id="bool-native"),
        pytest.param("processes", "3", "processes", 3, id="int-rendered"),
        pytest.param("limit", "None", "limit", None, id="rendered-none-is-default"),
        pytest.param("limit", 0, "limit", 0, id="zero-is-a-value"),
        pytest.param("prefix", None, "prefix", "", id="none-is-default"),
        pytest.param("source", "/one", "sources", ("/one",), id="one-path"),
        pytest.param("source", ["/a", "/b"], "sources", ("/a", "/b"), id="paths"),
        pytest.param(
            "headers", "Cache-Control:no-cache", "headers", ("Cache-Control:no-cache",), id="header"
        ),
        pytest.param("gzip_types", [], "gzip_types", DEFAULT_GZIP_TYPES, id="no-gzip-types-is-default"),
        pytest.param("put_mode", "add", "mode", "add", id="mode"),
    ],
)
def test_raw_values_are_coerced(name: str, raw: object, field: str, expected: object) -> None:
    options = build_options({**BASE, name: raw})
    assert getattr(options, field) == expected


@pytest.mark.parametrize(
    ("raw", "setting", "fragments"),
    [
        pytest.param({"processes": "many"}, "processes", ["'many'", "integer"], id="int-word"),
        pytest.param({"processes": True}, "processes", ["True", "integer"], id="int-bool"),
        pytest.param({"threads": [4]}, "threads", ["[4]"], id="int-list"),
        pytest.param({"part_size": "16 parsecs"}, "part_size", ["'16 parsecs'", "size"], id="size-word"),
        pytest.param({"part_size": 1024}, "part_size", ["between 5 MiB"], id="size-small"),
        pytest.param({"dry_run": "yes please"}, "dry_run", ["true or false"], id="bool-word"),
        pytest.param({"source": 5}, "source", ["5"], id="source-int"),
        pytest.param({"headers": {"Cache-Control": "x"}}, "headers", ["list of strings"], id="headers-dict"),
        pytest.param({"headers": ["NoColon"]}, "headers", ["NoColon"], id="header-malformed"),
        pytest.param({"put_mode": "sync"}, "put_mode", ["'sync'", "add, stupid, update"], id="mode"),
        pytest.param({"grant": "everyone"}, "grant", ["everyone"], id="acl"),
        pytest.param({"bucket": None}, "bucket", ["required"], id="no-bucket"),
        pytest.param({"prefix": "../up"}, "prefix", ["'..'"], id="dotdot"),
        pytest.param({"limit": -2}, "limit", ["-2"], id="limit-negative"),
        pytest.param({"transport": "quic"}, "transport", ["quic"], id="transport"),
    ],
)
def test_errors_name_the_setting_in_each_spelling(
    raw: dict[str, Any], setting: str, fragments: list[str]
) -> None:
    with pytest.raises(UsageError) as raised:
        build_options({**BASE, **raw})
    error = raised.value
    assert error.setting == setting
    airflow, shell = str(error), render(error)
    assert setting in airflow and "--" not in airflow, airflow
    assert FLAGS[setting] in shell, shell
    if FLAGS[setting] != setting:
        assert setting not in shell.replace(FLAGS[setting], ""), shell  # never both spellings
    for fragment in fragments:
        assert fragment in airflow and fragment in shell


def test_the_shell_has_a_flag_for_every_setting_it_takes() -> None:
    for setting in set(UPLOAD_SETTINGS):
        assert setting in FLAGS, setting
    for setting in CONNECTION_SETTINGS:
        assert setting in FLAGS, setting
    assert (FLAGS["put_mode"], FLAGS["headers"], FLAGS["source"], FLAGS["gzip_types"]) == (
        "--put", "--header", "SOURCE", "--gzip-type",
    )  # fmt: skip


def test_a_message_about_two_settings_renders_both() -> None:
    error = UsageError("{setting} and {headers} disagree", setting="grant", also=("headers",))
    assert str(error) == "grant and headers disagree"
    assert render(error) == "--grant and --header disagree"
    assert error.settings == ("grant", "headers")
    assert render(UsageError("argparse says --limit is bad")) == "argparse says --limit is bad"


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def test_defaults_are_the_same_from_the_shell_and_from_airflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each default lives once: the CLI gives the builder nothing it was not told."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    shell = options_from_args(parse(["--bucket", "my-bucket", "/src"]))
    airflow = build_options(BASE)
    assert shell == airflow
    processes, threads = default_concurrency("auto")
    assert airflow == UploadOptions(
        bucket="my-bucket", sources=("/src",), processes=processes, threads=threads
    )
    assert shell.connection == ConnectionSettings()
    # --retries counts the retries after the first attempt: its default is the connection's
    assert parse([]).retries is None
    retries_help = " ".join(build_parser().format_help().split())
    assert f"retries of a failed request (default {ConnectionSettings().max_attempts - 1})" in retries_help
    assert build_bounds({}) == BatchBounds()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            {"endpoint_url": "h:9000", "secure": False}, {"endpoint_url": "http://h:9000"}, id="scheme"
        ),
        pytest.param({"endpoint_url": "h:9000"}, {"endpoint_url": "https://h:9000"}, id="secure-scheme"),
        pytest.param({"ca_bundle": "/ca.pem"}, {"verify": "/ca.pem"}, id="ca-bundle"),
        pytest.param({"verify_ssl": False}, {"verify": False}, id="no-verify"),
        pytest.param({"retries": "0"}, {"max_attempts": 1}, id="no-retries"),
        pytest.param({"read_timeout": "2.5"}, {"read_timeout": 2.5}, id="timeout"),
    ],
)
def test_connection_settings(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    connection = build_connection(raw)
    for name, value in expected.items():
        assert getattr(connection, name) == value


@pytest.mark.parametrize(
    ("raw", "setting"),
    [
        pytest.param({"retries": -1}, "retries", id="negative-retries"),
        pytest.param({"read_timeout": "nan"}, "connect_timeout", id="nan-timeout"),
        pytest.param({"endpoint_url": "ftp://h"}, "endpoint_url", id="scheme"),
    ],
)
def test_connection_errors_name_the_setting(raw: dict[str, Any], setting: str) -> None:
    with pytest.raises(UsageError) as raised:
        build_connection(raw)
    assert raised.value.setting == setting
    assert FLAGS[setting] in render(raised.value)


@pytest.mark.parametrize(
    ("raw", "setting"),
    [
        pytest.param({"batch_size": 0}, "batch_size", id="batch-size-zero"),
        pytest.param({"batch_size": "ten"}, "batch_size", id="batch-size-word"),
        pytest.param({"batch_bytes": "4 lots"}, "batch_bytes", id="batch-bytes-word"),
        pytest.param({"max_batches": 0}, "max_batches", id="max-batches-zero"),
    ],
)
def test_plan_bounds_errors(raw: dict[str, Any], setting: str) -> None:
    with pytest.raises(UsageError) as raised:
        build_bounds(raw)
    assert raised.value.setting == setting and setting in str(raised.value)


def test_bounds_take_sizes() -> None:
    assert build_bounds({"batch_size": "500", "batch_bytes": "1GiB"}) == BatchBounds(500, 1024 * MIB)


def test_check_known_validates_literals_and_leaves_templates() -> None:
    with pytest.raises(UsageError, match="put_mode"):
        check_known({**BASE, "put_mode": "sync"})
    with pytest.raises(UsageError, match="batch_size"):
        check_known({**BASE, "batch_size": 0})
    templated = {"bucket": "{{ params.bucket }}", "source": "{{ params.source }}", "put_mode": "{{ x }}"}
    check_known({**templated, "batch_size": 5}, unknown=templated)  # nothing known is wrong
    with pytest.raises(UsageError, match="bucket is required"):
        check_known({"source": "/src"})  # a bucket that is not given at all is known to be missing


def test_delete_reaches_the_engine_only_when_it_supports_it() -> None:
    supported = any(f.name == "delete" for f in dataclasses.fields(UploadOptions))
    assert build_options({**BASE, "delete": "false"}) == build_options(BASE)
    if supported:
        assert build_options({**BASE, "delete": True}).delete is True  # type: ignore[attr-defined]
    else:
        with pytest.raises(UsageError, match="delete is not supported"):
            build_options({**BASE, "delete": True})
