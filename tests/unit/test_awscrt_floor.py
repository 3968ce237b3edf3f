"""An awscrt too old for the CRT transport (``boto3[crt]`` pins one) leaves the run on boto3 with
one warning line; asking for ``--transport crt`` with it is a usage error, not a traceback.

The installed awscrt's version is faked here; ``scripts/smoke_upload.py`` runs a real upload
with the awscrt that ``boto3[crt]`` installs (``make test-floors``)."""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_s3pput.errors import UsageError
from airflow_s3pput.transport import selection


@pytest.fixture
def awscrt(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str | None], None]]:
    """``awscrt(version)`` makes awscrt look installed at that version (None: not installed)."""
    real_find_spec = importlib.util.find_spec

    def install(version: str | None) -> None:
        def find_spec(name: str, *args: Any) -> Any:
            if name == "awscrt":
                return real_find_spec(name) if version else None
            return real_find_spec(name, *args)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)
        monkeypatch.setattr(selection, "_installed_awscrt", lambda: version)
        selection._old_awscrt.cache_clear()
        selection._warn.cache_clear()

    yield install
    selection._old_awscrt.cache_clear()
    selection._warn.cache_clear()


def test_the_installed_version_is_read_as_importlib_metadata_reads_it() -> None:
    assert selection._installed_awscrt() == importlib.metadata.version("awscrt")


def test_without_a_metadata_directory_beside_the_package_importlib_metadata_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        spec = real_find_spec(name, *args)
        if name == "awscrt" and spec is not None:
            spec = copy.copy(spec)  # the imported module's own spec stays as it is
            spec.origin = None  # as for a namespace package: no file to look beside
        return spec

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert selection._installed_awscrt() == importlib.metadata.version("awscrt")


@pytest.mark.parametrize(
    ("version", "transport"),
    [
        pytest.param("0.38.1", "crt", id="the-floor"),
        pytest.param("0.39.0", "crt", id="newer"),
        pytest.param("1.0.0", "crt", id="next-major"),
        pytest.param("0.38.0", "boto3", id="boto3-crt-pin"),
        pytest.param("0.27.1", "boto3", id="much-older"),
        pytest.param("0.38.1rc1", "crt", id="release-candidate-of-the-floor"),
        pytest.param(None, "boto3", id="not-installed"),
    ],
)
def test_auto_picks_the_crt_only_when_it_is_new_enough(
    awscrt: Callable[[str | None], None], version: str | None, transport: str
) -> None:
    awscrt(version)
    assert selection.resolve_transport("auto") == transport
    assert selection.resolve_transport("boto3") == "boto3"


def test_an_old_awscrt_is_one_warning_line(
    awscrt: Callable[[str | None], None], caplog: pytest.LogCaptureFixture
) -> None:
    awscrt("0.38.0")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # default_concurrency, the bucket check, each worker's transport
            assert selection.resolve_transport("auto") == "boto3"
        assert selection.default_concurrency("auto") == selection.default_concurrency("boto3")
    (record,) = caplog.records
    assert record.getMessage() == (
        "s3pput: warning: awscrt 0.38.0 is older than 0.38.1, which the crt transport needs: using boto3"
    )


def test_no_warning_without_awscrt_or_with_a_new_one(
    awscrt: Callable[[str | None], None], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        awscrt(None)
        selection.resolve_transport("auto")
        awscrt("0.38.1")
        selection.resolve_transport("auto")
    assert caplog.records == []


@pytest.mark.parametrize(
    ("version", "found"),
    [pytest.param("0.38.0", "found 0.38.0", id="too-old"), pytest.param(None, "not installed", id="missing")],
)
def test_asking_for_the_crt_without_a_usable_awscrt_is_a_usage_error(
    awscrt: Callable[[str | None], None], version: str | None, found: str
) -> None:
    awscrt(version)
    with pytest.raises(UsageError) as raised:
        selection.resolve_transport("crt")
    assert raised.value.setting == "transport"
    assert str(raised.value) == f"transport crt needs awscrt>=0.38.1 ({found})"
