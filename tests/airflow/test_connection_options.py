"""The Airflow connection as ``AwsBaseOperator`` honours it: ``config_kwargs`` (a proxy with a
password), and ``region_name`` / ``verify`` given to the task group over the connection's."""

from __future__ import annotations

import contextlib
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.errors import UsageError
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.helpers import RunDag, list_keys, make_tree, no_aws_env
from tests.integration.forward_proxy import ForwardProxy

PROXY_SECRET = "pr0xy-pa55word-26"
#: the Airflow commands import this checkout, whichever one the tests run from
HERE = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def connection(s3: LocalS3Server, endpoint: str, **extra: Any) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": s3.access_key,
            "password": s3.secret_key,
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1", **extra},
        }
    )


@pytest.fixture
def proxy(s3_server: LocalS3Server) -> Iterator[tuple[ForwardProxy, str]]:
    """A forward proxy with a password, and an endpoint only it can reach (``s3.invalid``)."""
    host = f"s3.invalid:{s3_server.port}"
    with ForwardProxy({host: ("127.0.0.1", s3_server.port)}, auth=("s3pput", PROXY_SECRET)) as running:
        yield running, f"http://{host}"


def test_a_proxy_in_config_kwargs_carries_the_whole_run(
    run_upload_dag: RunDag,
    s3_server: LocalS3Server,
    proxy: tuple[ForwardProxy, str],
    bucket: str,
    s3_client: Any,
    tmp_path: Path,
) -> None:
    """Plan and puts go through the connection's proxy (the endpoint resolves nowhere else), on
    boto3 with one warning line; its password is in no log line and no XCom."""
    forward, endpoint = proxy
    source = make_tree(tmp_path / "src", {f"f{i}.txt": f"file {i}" for i in range(6)})
    config_kwargs = {"proxies": {"http": forward.url()}, "retries": {"total_max_attempts": 3}}
    env = {"AIRFLOW_CONN_AWS_DEFAULT": connection(s3_server, endpoint, config_kwargs=config_kwargs), **HERE}
    result = run_upload_dag({"source": str(source), "bucket": bucket, "batch_size": 3}, env=env)
    assert result.exit_code == 0, result.log[-3000:]
    assert result.count("upload.put", "success") == 2
    assert set(list_keys(s3_client, bucket)) == {f"f{i}.txt" for i in range(6)}
    assert forward.seen and all(target.startswith(f"{endpoint}/{bucket}") for _, target in forward.seen)
    warning = "the crt transport cannot honour the connection's config_kwargs proxies: using boto3"
    assert warning in result.log  # once a process: ``dags test`` runs every task in one
    assert PROXY_SECRET not in result.log
    (summary,) = result.xcoms("upload.reduce")
    assert summary["files_put"] == 6 and PROXY_SECRET not in json.dumps(summary)


VERIFY_DAG = """
from airflow.sdk import DAG, Param

from airflow_s3pput.provider import s3pput_task_group

with DAG(
    dag_id="s3pput_verify",
    schedule=None,
    params={"source": Param(""), "bucket": Param(""), "verify": Param(""), "region": Param("")},
):
    s3pput_task_group(
        source="{{ params.source }}",
        bucket="{{ params.bucket }}",
        verify="{{ params.verify }}",
        region_name="{{ params.region }}",
        group_id="upload",
    )
"""


def test_verify_and_region_name_override_the_connections(
    run_dag: RunDag, s3_server: LocalS3Server, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    """An https endpoint whose certificate no one trusts: the connection says nothing of it, the
    task group's ``verify`` names its CA bundle, and the upload lands (plan on boto3, PUTs on the
    CRT); without it the plan fails for good on the certificate. ``region_name`` is rendered
    and taken too (SeaweedFS checks the signatures in any region)."""
    from tests.badinput.tls import TlsRelay, self_signed_cert

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "s3pput_verify.py").write_text(textwrap.dedent(VERIFY_DAG))
    cert, key = self_signed_cert(tmp_path)
    source = make_tree(tmp_path / "src", {"a.txt": "alpha", "b/c.txt": "gamma"})
    conf = {"source": str(source), "bucket": bucket, "verify": str(cert), "region": "eu-north-1"}
    with TlsRelay(("127.0.0.1", s3_server.port), cert, key) as relay:
        env = {"AIRFLOW_CONN_AWS_DEFAULT": connection(s3_server, relay.endpoint_url), **HERE}
        untrusted = run_dag("s3pput_verify", {**conf, "verify": ""}, env=env, dags_folder=dags)
        trusted = run_dag("s3pput_verify", conf, env=env, dags_folder=dags)
    assert untrusted.exit_code != 0 and untrusted.states[("upload.plan", -1)] == "failed"
    assert "is not trusted" in untrusted.log
    assert trusted.exit_code == 0, trusted.log[-3000:]
    assert set(list_keys(s3_client, bucket)) == {"a.txt", "b/c.txt"}


def test_the_operators_arguments_reach_the_hook(
    s3_server: LocalS3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: what ``settings_from_connection`` makes of a connection with every extra."""
    from airflow_s3pput.provider.connection import settings_from_connection

    extra = {
        "verify": False,
        "config_kwargs": {
            "proxies": {"https": f"http://u:{PROXY_SECRET}@proxy.internal:3128"},
            "s3": {"addressing_style": "virtual"},
            "retries": {"max_attempts": 3},
            "connect_timeout": 4,
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_S3_26", connection(s3_server, "https://gw.example/s3-gw/", **extra))
    settings = settings_from_connection("s3_26")
    assert (settings.region, settings.verify, settings.endpoint_path) == ("us-east-1", False, "/s3-gw")
    assert (settings.max_attempts, settings.connect_timeout, settings.addressing_style) == (4, 4.0, "virtual")
    assert dict(settings.client_options) == {"proxies": extra["config_kwargs"]["proxies"]}
    assert PROXY_SECRET not in repr(settings)
    overridden = settings_from_connection("s3_26", region_name="ap-south-1", verify="/etc/ca.pem")
    assert (overridden.region, overridden.verify) == ("ap-south-1", "/etc/ca.pem")
    # Fixed keys need no boto3 session: a plain-HTTP endpoint then takes every call on the CRT.
    assert overridden.session_factory is None
    monkeypatch.setenv(
        "AIRFLOW_CONN_S3_BAD",
        connection(s3_server, s3_server.endpoint_url, config_kwargs={"proxy": PROXY_SECRET}),
    )
    with pytest.raises(
        UsageError, match=r"^invalid config_kwargs proxy: not an option of botocore's Config$"
    ):
        settings_from_connection("s3_bad")


@pytest.mark.parametrize("expires", [False, True])
def test_credentials_that_refresh_are_signed_by_the_hooks_session(
    s3_server: LocalS3Server, monkeypatch: pytest.MonkeyPatch, expires: bool
) -> None:
    """The workers' own chain (``aws_conn_id=None``): keys in the environment are fixed, unless
    they expire (botocore refreshes those); only then does the run sign with the hook's session,
    made for the region the task asked for."""
    from airflow_s3pput.provider.connection import settings_from_connection
    from airflow_s3pput.transport.selection import open_transport

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    if expires:
        monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", "2999-01-01T00:00:00Z")
    settings = settings_from_connection(None, region_name="ap-south-1")
    assert settings.access_key == s3_server.access_key and settings.region == "ap-south-1"
    if not expires:
        assert settings.session_factory is None
    else:
        assert settings.session_factory is not None
        assert settings.session_factory().region_name == "ap-south-1"
    options = UploadOptions(bucket="bkt", sources=["/tmp"], connection=settings)
    with contextlib.closing(open_transport(options)) as transport:
        assert type(transport).__name__ == "CrtTransport"
        # signed with the session's credentials only where they refresh
        assert (getattr(transport, "session", None) is not None) == expires


def test_a_chain_without_credentials_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No keys anywhere (no environment, no config files, no instance metadata): one line that
    names the chain, not boto3's AttributeError."""
    from airflow_s3pput.provider.connection import settings_from_connection

    no_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(UsageError) as caught:
        settings_from_connection(None)
    assert str(caught.value) == (
        "the workers' AWS credential chain (aws_conn_id None) gives no usable AWS credentials "
        "(no AWS credentials found)"
    )


@pytest.mark.parametrize("emptied", ["", "  "])
def test_an_emptied_connection_id_fails_instead_of_falling_back(emptied: str) -> None:
    """A form field emptied by hand is no request for the workers' own credentials (None is)."""
    from airflow_s3pput.provider.connection import settings_from_connection

    with pytest.raises(UsageError, match=r"^aws_conn_id is empty: name an Airflow connection"):
        settings_from_connection(emptied)


def test_an_operator_given_an_emptied_connection_id_fails_at_once() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_s3pput.provider import S3PPutPlanOperator

    plan = S3PPutPlanOperator(task_id="plan", source="/tmp", bucket="bkt", aws_conn_id="")
    with pytest.raises(AirflowFailException, match="aws_conn_id is empty"):
        plan.upload_options()
