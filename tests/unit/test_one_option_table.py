"""The option list is declared once (``option_builder.UPLOAD_SETTINGS``, ``PLAN_SETTINGS``,
``AWS_SETTINGS``): the CLI's flags, the operators' keywords and the task group's keywords are
held to it."""

from __future__ import annotations

import dataclasses
import inspect
from typing import get_args

import pytest

from airflow_s3pput.cli import FLAGS, build_parser
from airflow_s3pput.modes import MODES
from airflow_s3pput.option_builder import (
    AIRFLOW_SPELLING,
    AWS_SETTINGS,
    CONNECTION_SETTINGS,
    PLAN_SETTINGS,
    UPLOAD_SETTINGS,
)
from airflow_s3pput.options import TRANSPORTS, UploadOptions

#: what the table holds but the shell has no use for: the plan's bounds batch Airflow's tasks
SHELL_LACKS = set(PLAN_SETTINGS)
#: the shell's options that are no setting: argparse's own, and how the shell prints
SHELL_ONLY = {"help", "version", "verbose", "quiet", "json", "no_progress"}
#: keywords that are not upload settings: the connection, the group and its tasks
NOT_SETTINGS = {
    "aws_conn_id", "group_id", "fail_on_error", "outlets", "retries", "retry_delay",
    "plan_kwargs", "put_kwargs", "reduce_kwargs",
}  # fmt: skip


def keywords(function: object) -> set[str]:
    return {
        name
        for name, p in inspect.signature(function).parameters.items()  # type: ignore[arg-type]
        if p.kind is p.KEYWORD_ONLY
    }


def test_the_task_group_takes_exactly_the_table() -> None:
    pytest.importorskip("airflow.sdk")  # the Python matrix runs without Airflow
    from airflow_s3pput.provider.task_group import s3pput_task_group

    assert keywords(s3pput_task_group) - NOT_SETTINGS == set(UPLOAD_SETTINGS) | set(PLAN_SETTINGS) | set(
        AWS_SETTINGS
    )


def test_the_operators_take_exactly_the_table() -> None:
    pytest.importorskip("airflow.sdk")
    from airflow_s3pput.provider.operators import S3PPutPlanOperator, _UploadSettings

    shared = keywords(_UploadSettings.__init__) - NOT_SETTINGS
    plan_only = keywords(S3PPutPlanOperator.__init__) - NOT_SETTINGS
    assert shared | plan_only == set(UPLOAD_SETTINGS) | set(PLAN_SETTINGS) | set(AWS_SETTINGS)


def test_the_put_leaves_exactly_the_plan_only_settings_to_the_plan() -> None:
    pytest.importorskip("airflow.sdk")
    from airflow_s3pput.provider.operators import PLAN_ONLY, S3PPutPlanOperator, _UploadSettings

    assert keywords(S3PPutPlanOperator.__init__) == PLAN_ONLY
    assert not keywords(_UploadSettings.__init__) & PLAN_ONLY


def test_the_shell_takes_exactly_the_table() -> None:
    """Each option's ``dest`` is a setting of the table, or the ordered ``--include``/``--exclude``
    list; every setting but the plan's bounds has an option."""
    dests = {action.dest for action in build_parser().declared} - SHELL_ONLY
    taken = set(UPLOAD_SETTINGS) - SHELL_LACKS - {"include", "exclude"} | {"filters"}
    assert dests == taken | set(CONNECTION_SETTINGS)


def test_the_shell_spells_every_setting_of_the_table() -> None:
    assert set(UPLOAD_SETTINGS) - SHELL_LACKS <= set(FLAGS)


def test_the_shell_has_a_peer_for_each_connection_override() -> None:
    """``region_name`` and ``verify`` (``AwsBaseOperator``'s names) are ``--region``, and
    ``--ca-bundle`` / ``--no-verify-ssl`` in the shell."""
    assert set(AIRFLOW_SPELLING.values()) == set(AWS_SETTINGS)
    assert set(AIRFLOW_SPELLING) <= set(CONNECTION_SETTINGS) & set(FLAGS)


def test_the_task_group_types_offer_exactly_the_engine_choices() -> None:
    """A DAG author's mypy accepts the modes and transports that the engine takes, and no other."""
    pytest.importorskip("airflow.sdk")
    from airflow_s3pput.provider.task_group import PutMode, Transport

    assert set(get_args(PutMode)) == set(MODES)
    assert set(get_args(Transport)) == set(TRANSPORTS)


def test_every_upload_option_is_a_setting_of_the_table() -> None:
    """The table and ``UploadOptions`` name the same options: none is out of a front end's reach,
    none is coerced for nothing. The connection and the ordered filters each front end builds."""
    setting_of = {"sources": "source", "mode": "put_mode"}
    fields = {f.name for f in dataclasses.fields(UploadOptions)} - {"connection", "filters"}
    assert {setting_of.get(name, name) for name in fields} == set(UPLOAD_SETTINGS)
