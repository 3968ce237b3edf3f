"""Plain keys are used without botocore only where a boto3 session would pick the same ones."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.transport.boto3_transport import make_session
from airflow_s3pput.transport.credentials import environment_endpoint, plain_credentials
from tests.helpers import no_aws_env

KEYS = {"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "env-secret"}


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    no_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    return tmp_path


def boto3_view(settings: ConnectionSettings) -> tuple[str, str, str | None, str]:
    session = make_session(settings)
    frozen = session.get_credentials().get_frozen_credentials()
    return frozen.access_key, frozen.secret_key, frozen.token, session.region_name or "us-east-1"


@pytest.mark.parametrize(
    ("env", "settings"),
    [
        ({**KEYS, "AWS_DEFAULT_REGION": "eu-west-1"}, ConnectionSettings()),
        ({**KEYS, "AWS_SESSION_TOKEN": "tok"}, ConnectionSettings(region="us-west-2")),
        ({**KEYS, "AWS_SECURITY_TOKEN": "old", "AWS_SESSION_TOKEN": "new"}, ConnectionSettings(region="r")),
        ({**KEYS, "AWS_PROFILE": "other"}, ConnectionSettings(region="ap-south-1")),  # env keys outrank it
        (
            {"AWS_DEFAULT_REGION": "r"},
            ConnectionSettings(access_key="AKIAGIVEN", secret_key="g", session_token="t"),
        ),
        (KEYS, ConnectionSettings(access_key="AKIAGIVEN", secret_key="given", region="r")),  # given keys win
    ],
)
def test_plain_keys_are_the_ones_boto3_picks(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], settings: ConnectionSettings
) -> None:
    (config_dir / "config").write_text("[profile other]\nregion = ap-south-1\n")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    plain = plain_credentials(settings)
    assert plain is not None
    assert tuple(plain) == boto3_view(settings)


def test_no_config_file_means_the_default_region(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    plain = plain_credentials(ConnectionSettings())
    assert plain is not None and plain.region == "us-east-1"
    assert tuple(plain) == boto3_view(ConnectionSettings())


@pytest.mark.parametrize(
    ("env", "settings", "config"),
    [
        (KEYS, ConnectionSettings(profile="p"), ""),  # an explicit profile outranks the env keys
        (KEYS, ConnectionSettings(), "[default]\nregion = eu-north-1\n"),  # the region is in the config
        ({**KEYS, "AWS_PROFILE": "p"}, ConnectionSettings(), ""),  # so is the profile's region
        ({**KEYS, "AWS_CREDENTIAL_EXPIRATION": "2030-01-01T00:00:00Z"}, ConnectionSettings(region="x"), ""),
        ({"AWS_ACCESS_KEY_ID": "AKIAONLY"}, ConnectionSettings(region="x"), ""),  # half a pair
        ({}, ConnectionSettings(region="x"), ""),  # the chain (files, roles, SSO) decides
    ],
)
def test_anything_else_is_left_to_a_boto3_session(
    config_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    settings: ConnectionSettings,
    config: str,
) -> None:
    if config:
        (config_dir / "config").write_text(config)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert plain_credentials(settings) is None


def test_boto3_is_what_the_table_above_describes() -> None:
    # The precedence the tests above rely on comes from botocore: fail loudly if it moves.
    import botocore.credentials

    assert botocore.credentials.EnvProvider.TOKENS == ["AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"]
    assert boto3.session.Session  # the session type make_session builds


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"AWS_ENDPOINT_URL": "http://general:1"}, "http://general:1"),
        ({"AWS_ENDPOINT_URL": "http://general:1", "AWS_ENDPOINT_URL_S3": "http://s3:2"}, "http://s3:2"),
        ({"AWS_ENDPOINT_URL_S3": "http://s3:2", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}, None),
    ],
)
def test_the_environments_endpoint_is_the_one_a_boto3_client_takes(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str | None
) -> None:
    """Every call of a run goes where boto3's would: the endpoint of a client it makes now."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert environment_endpoint() == expected
    client = boto3.session.Session(region_name="us-east-1").client(
        "s3", aws_access_key_id="k", aws_secret_access_key="s"
    )
    assert client.meta.endpoint_url == (expected or "https://s3.amazonaws.com")
