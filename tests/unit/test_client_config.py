"""An Airflow connection's ``config_kwargs``, ``region_name`` and ``verify``: what each transport
honours, what makes ``auto`` take boto3, what is refused; and endpoints with a path."""

from __future__ import annotations

import logging
import pickle
import re
from typing import Any

import pytest

from airflow_s3pput.errors import UsageError
from airflow_s3pput.option_builder import as_verify, build_options, check_known
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.transport import selection
from airflow_s3pput.transport.client_config import botocore_config, connection_fields, crt_cannot_honour
from airflow_s3pput.transport.crt_http import request_target

SECRET = "pr0xy-s3cret"
PROXIES = {"http": f"http://user:{SECRET}@proxy.internal:3128", "https": "http://proxy.internal:3128"}


@pytest.mark.parametrize(
    ("config_kwargs", "fields"),
    [
        pytest.param({}, {}, id="none"),
        pytest.param(
            {"connect_timeout": 3, "read_timeout": 7.5},
            {"connect_timeout": 3.0, "read_timeout": 7.5},
            id="timeouts",
        ),
        pytest.param(
            {"retries": {"total_max_attempts": 4, "mode": "adaptive"}},
            {"max_attempts": 4},
            id="total-attempts",
        ),
        pytest.param({"retries": {"max_attempts": 2}}, {"max_attempts": 3}, id="retries-after-the-first"),
        pytest.param({"retries": {"mode": "standard"}}, {}, id="mode-only"),
        pytest.param({"s3": {"addressing_style": "virtual"}}, {"addressing_style": "virtual"}, id="style"),
        pytest.param(
            {"s3": {"addressing_style": "path", "use_accelerate_endpoint": True}},
            {"addressing_style": "path", "client_options": (("s3", {"use_accelerate_endpoint": True}),)},
            id="style-and-other-s3",
        ),
        pytest.param({"region_name": "eu-west-3"}, {"region": "eu-west-3"}, id="region"),
        pytest.param(
            {"proxies": PROXIES, "user_agent_extra": "x"},
            {"client_options": (("proxies", PROXIES), ("user_agent_extra", "x"))},
            id="proxies",
        ),
    ],
)
def test_config_kwargs_become_the_runs_settings(
    config_kwargs: dict[str, Any], fields: dict[str, Any]
) -> None:
    assert connection_fields(config_kwargs) == fields
    settings = ConnectionSettings(**fields)
    assert pickle.loads(pickle.dumps(settings)) == settings  # worker processes get it


@pytest.mark.parametrize(
    ("config_kwargs", "message"),
    [
        pytest.param({"proxy": "x"}, "config_kwargs proxy: not an option of botocore's Config", id="unknown"),
        pytest.param(
            {"proxies": "http://user:pw@h:1"},
            "config_kwargs proxies: expected a JSON object",
            id="proxies-not-a-mapping",
        ),
        pytest.param({"connect_timeout": "soon"}, "connect_timeout: expected a number", id="timeout"),
        pytest.param({"retries": {"max_attempts": 50}}, "at most 20 attempts", id="too-many"),
        pytest.param({"retries": {"total_max_attempts": "3"}}, "retries.total_max_attempts", id="text"),
        pytest.param(["proxies"], "config_kwargs: expected a JSON object", id="a-list"),
    ],
)
def test_bad_config_kwargs_are_one_line_without_their_value(config_kwargs: Any, message: str) -> None:
    with pytest.raises(UsageError, match=message) as raised:
        connection_fields(config_kwargs)
    assert "pw" not in str(raised.value) and "\n" not in str(raised.value)


def test_a_bad_addressing_style_is_refused() -> None:
    with pytest.raises(UsageError, match="invalid addressing_style 'sideways'"):
        ConnectionSettings(**connection_fields({"s3": {"addressing_style": "sideways"}}))


def test_a_proxy_password_stays_out_of_the_settings_repr() -> None:
    settings = ConnectionSettings(**connection_fields({"proxies": PROXIES}))
    assert SECRET not in repr(settings) and SECRET not in str(settings)


@pytest.mark.parametrize(
    ("options", "cannot"),
    [
        pytest.param((), (), id="nothing"),
        pytest.param((("proxies", PROXIES),), ("proxies",), id="proxies"),
        pytest.param(
            (("proxies_config", {"proxy_ca_bundle": "/ca"}),), ("proxies_config",), id="proxies-config"
        ),
        pytest.param((("user_agent_extra", "x"), ("max_pool_connections", 5)), (), id="neutral"),
        pytest.param((("signature_version", "s3v4"),), (), id="sigv4"),
        pytest.param((("signature_version", "unsigned"),), ("signature_version",), id="unsigned"),
        pytest.param((("s3", {"use_accelerate_endpoint": True}),), ("s3",), id="accelerate"),
        pytest.param((("use_fips_endpoint", True),), ("use_fips_endpoint",), id="fips"),
    ],
)
def test_what_the_crt_cannot_honour(options: tuple[tuple[str, Any], ...], cannot: tuple[str, ...]) -> None:
    assert crt_cannot_honour(options) == cannot


def test_the_boto3_client_config_keeps_the_connections_options_under_ours() -> None:
    from botocore import UNSIGNED

    given = (
        ("proxies", PROXIES),
        ("proxies_config", {"proxy_use_forwarding_for_https": True}),
        ("s3", {"use_dualstack_endpoint": True, "payload_signing_enabled": True}),
        ("signature_version", "unsigned"),
        ("user_agent_extra", "team-a"),
    )
    own = {"retries": {"total_max_attempts": 1}, "max_pool_connections": 72,
           "s3": {"addressing_style": "path", "payload_signing_enabled": False}}  # fmt: skip
    config = botocore_config(given, own)
    assert config.proxies == PROXIES
    assert config.proxies_config == {"proxy_use_forwarding_for_https": True}
    assert config.user_agent_extra == "team-a"
    assert config.signature_version is UNSIGNED  # as the Amazon provider reads "unsigned"
    assert config.retries == {"total_max_attempts": 1}  # our policy retries; botocore tries once
    assert config.max_pool_connections == 72
    assert config.s3 == {
        "use_dualstack_endpoint": True,
        "addressing_style": "path",
        "payload_signing_enabled": False,
    }


def test_without_connection_options_the_config_is_ours() -> None:
    config = botocore_config((), {"connect_timeout": 5.0})
    assert config.connect_timeout == 5.0 and config.proxies is None


@pytest.fixture
def crt_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(selection, "crt_available", lambda: True)
    selection._warn.cache_clear()


def test_auto_takes_boto3_with_one_warning_when_the_crt_cannot_honour_a_proxy(
    crt_installed: None, caplog: pytest.LogCaptureFixture
) -> None:
    proxied = ConnectionSettings(client_options=(("proxies", PROXIES),))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # the defaults, the bucket check, each worker's transport
            assert selection.resolve_transport("auto", proxied) == "boto3"
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (
        "s3pput: warning: the crt transport cannot honour the connection's config_kwargs proxies: using boto3"
    )
    assert selection.resolve_transport("auto", ConnectionSettings()) == "crt"
    # The run's default concurrency is boto3's, as boto3 carries it.
    options = build_options({"bucket": "bkt", "source": "."}, connection=proxied)
    assert (options.processes, options.threads) == selection.default_concurrency("boto3")


def test_crt_asked_for_with_a_proxy_is_refused(crt_installed: None) -> None:
    proxied = ConnectionSettings(client_options=(("proxies", PROXIES),))
    refused = (
        "^transport crt cannot honour the connection's config_kwargs proxies: use transport auto or boto3$"
    )
    with pytest.raises(UsageError, match=refused) as raised:
        build_options({"bucket": "bkt", "source": ".", "transport": "crt"}, connection=proxied)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("endpoint", "style", "target"),
    [
        pytest.param("http://127.0.0.1:8333", "auto", ("127.0.0.1:8333", "/bkt"), id="path-style"),
        pytest.param("https://gw.example/s3-gw/", "path", ("gw.example", "/s3-gw/bkt"), id="under-a-path"),
        pytest.param("https://gw.example/a/b", "auto", ("gw.example", "/a/b/bkt"), id="deeper"),
        pytest.param("https://gw.example", "virtual", ("bkt.gw.example", ""), id="virtual"),
        pytest.param("https://gw.example/s3-gw", "virtual", ("bkt.gw.example", "/s3-gw"), id="virtual-path"),
        pytest.param(None, "auto", ("s3.eu-west-1.amazonaws.com", "/bkt"), id="aws"),
    ],
)
def test_the_crt_builds_urls_as_botocore(endpoint: str | None, style: str, target: tuple[str, str]) -> None:
    settings = ConnectionSettings(endpoint_url=endpoint, addressing_style=style)
    assert request_target(settings, "bkt", "eu-west-1") == target


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("https://gw.example/s3-gw?x=1", "an endpoint has no query or fragment"),
        ("https://gw.example/s3-gw#top", "an endpoint has no query or fragment"),
        ("https://gw.example/a/../b", "its path must be plain segments, as in https://host/s3-gw/"),
        ("https://gw.example//s3", "its path must be plain segments, as in https://host/s3-gw/"),
        ("gw.example/s3-gw", "expected http(s)://host[:port][/path]"),
    ],
)
def test_an_endpoint_path_that_cannot_work_is_refused_with_the_reason(endpoint: str, reason: str) -> None:
    with pytest.raises(UsageError, match=f"^invalid endpoint_url .*: {re.escape(reason)}$"):
        ConnectionSettings(endpoint_url=endpoint)


def test_credentials_in_an_endpoint_are_refused_without_repeating_them() -> None:
    with pytest.raises(UsageError) as raised:
        ConnectionSettings(endpoint_url=f"https://me:{SECRET}@gw.example/s3-gw/")
    assert SECRET not in str(raised.value)
    assert str(raised.value) == (
        "invalid endpoint_url 'https://gw.example/s3-gw/': credentials in the URL are not used: "
        "give them as AWS credentials"
    )


def test_an_endpoint_with_a_path_is_accepted() -> None:
    assert ConnectionSettings(endpoint_url="https://gw.example/s3-gw/").endpoint_path == "/s3-gw"
    assert ConnectionSettings(endpoint_url="http://127.0.0.1:8333/").endpoint_path == ""


@pytest.mark.parametrize(
    ("value", "verify"),
    [(True, True), (False, False), ("false", False), ("True", True), (" /etc/ca.pem ", "/etc/ca.pem")],
)
def test_verify_as_the_amazon_provider_takes_it(value: object, verify: bool | str) -> None:
    assert as_verify(value) == verify


def test_operator_overrides_are_checked_when_the_dag_is_parsed() -> None:
    check_known({"source": ".", "bucket": "bkt", "region_name": "eu-west-1", "verify": False})
    with pytest.raises(UsageError, match="invalid verify 3"):
        check_known({"source": ".", "bucket": "bkt", "verify": 3})
    check_known({"source": ".", "bucket": "bkt", "verify": "{{ params.ca }}"}, unknown=["verify"])


def test_the_crt_parts_take_the_environments_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("awscrt")
    from awscrt.http import HttpProxyAuthenticationType

    from airflow_s3pput.transport.crt_stream import environment_proxy

    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert environment_proxy("s3.example", tls=False) is None
    monkeypatch.setenv("HTTP_PROXY", f"http://user:{SECRET}@proxy.internal:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://tls-proxy.internal")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,.local")
    plain = environment_proxy("s3.example", tls=False)
    assert (plain.host_name, plain.port) == ("proxy.internal", 3128)
    assert plain.auth_type == HttpProxyAuthenticationType.Basic
    assert (plain.auth_username, plain.auth_password) == ("user", SECRET)
    tls = environment_proxy("s3.example", tls=True)
    assert (tls.host_name, tls.port, tls.auth_type) == (
        "tls-proxy.internal",
        80,
        HttpProxyAuthenticationType.Nothing,
    )
    assert environment_proxy("127.0.0.1", tls=False) is None
    assert environment_proxy("minio.local", tls=False) is None
