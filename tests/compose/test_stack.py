"""The production image and docker-compose.yml run for real under podman: the image, the
healthchecks, jobs through the stack, and faults of each service mid-job (a worker killed, a
worker cut off, Redis restarted, the API restarted, the stack taken down and up).

The modules's tests share one stack (``stack``, session scope) and run in file order: each
leaves two healthy workers behind. Recovery times go into ``results`` (docs/deployment.md);
the only time bounds are generous safety timeouts.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import httpx_sse
import pytest

from tests.compose import podman
from tests.compose.stack import Stack, wait_until

pytestmark = pytest.mark.compose

# Safety timeout of one job (seconds); a job here takes tens of seconds.
JOB_TIMEOUT = 300
SCHEMES = ["he_normal", "glorot_uniform", "lecun_normal", "he_uniform"]
# Long enough that a fault lands mid-run after a checkpoint (every second: compose.test.yml).
STEPS = 20_000  # every point kept: at most INITLAB_MAX_BATCH_POINTS (20,000)
NETWORK = f"{podman.PROJECT}_default"


def job_spec(steps: int = STEPS, schemes: list[str] = SCHEMES) -> dict[str, Any]:
    return {
        "dataset": {"name": "circles", "train_size": 300, "validation_size": 100, "noise": 0.05},
        "model": {"hidden_layers": [32, 32], "activation": "relu"},
        "training": {
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "batch_size": 16,
            "steps": steps,
        },
        "schemes": [{"label": name, "initializer": name} for name in schemes],
        "seed": 5,
        # Every batch loss kept: "recorded once" is checked step by step.
        "record": {"plot_n_batches": 100, "max_batch_points": steps},
    }


def submit(stack: Stack, **kwargs: Any) -> str:
    res = stack.api.post("/v1/jobs", json=job_spec(**kwargs))
    assert res.status_code == 202, res.text
    job_id: str = res.json()["id"]
    return job_id


def job(stack: Stack, job_id: str) -> dict[str, Any]:
    res = stack.api.get(f"/v1/jobs/{job_id}")
    if res.status_code == 503:  # Redis restarting or loading its AOF: wait_until polls on
        raise RuntimeError(res.text)
    assert res.status_code == 200, res.text
    doc: dict[str, Any] = res.json()
    return doc


def finished(stack: Stack, job_id: str, timeout: float = JOB_TIMEOUT) -> dict[str, Any]:
    doc: dict[str, Any] = wait_until(
        lambda: (d := job(stack, job_id))["status"] in ("succeeded", "failed", "cancelled") and d,
        timeout,
        f"job {job_id} to finish",
    )
    return doc


def assert_recorded_once(doc: dict[str, Any], steps: int = STEPS) -> None:
    """The job succeeded and every run holds every step once, in order."""
    assert doc["status"] == "succeeded", [r["error"] for r in doc["runs"]]
    for run in doc["runs"]:
        assert run["status"] == "succeeded", run["error"]
        assert run["batch"] == steps
        assert run["batch_steps"] == list(range(steps))


def running_after_checkpoint(stack: Stack, job_id: str, worker: str) -> dict[str, Any]:
    """Wait until every run is running and ``worker``'s runs have checkpointed."""

    def ready() -> dict[str, Any] | None:
        doc = job(stack, job_id)
        assert doc["status"] in ("queued", "running"), "the job ended before the fault"
        runs = doc["runs"]
        mine = [r for r in runs if r["worker"] == worker]
        if (
            mine
            and all(r["status"] == "running" for r in runs)
            and all(
                (r["checkpoint_step"] or 0) > 0 and r["batch"] > r["checkpoint_step"] for r in mine
            )
        ):
            return doc
        return None

    doc: dict[str, Any] = wait_until(ready, JOB_TIMEOUT, f"runs of {worker} checkpointed")
    return doc


def time_to_resume(
    stack: Stack, job_id: str, lost: list[int], survivor: str, since: float
) -> float:
    """Seconds from ``since`` until every run in ``lost`` runs again on ``survivor``."""

    def resumed() -> bool:
        runs = job(stack, job_id)["runs"]
        return all(
            runs[i]["worker"] == survivor and runs[i]["status"] in ("running", "succeeded")
            for i in lost
        )

    wait_until(resumed, JOB_TIMEOUT, f"runs {lost} resumed on {survivor}")
    return round(time.monotonic() - since, 1)


def lose_a_worker(
    stack: Stack, results: dict[str, Any], fault: str, cut: Any, restore: Any
) -> None:
    """Submit a job, apply ``cut(container)`` to a worker mid-job, check its runs resume on
    the other from their checkpoints and the job finishes with every run recorded once."""
    victim, survivor = stack.containers("worker")[:2]
    victim_host, survivor_host = stack.hostname(victim), stack.hostname(survivor)
    job_id = submit(stack)
    before = running_after_checkpoint(stack, job_id, victim_host)
    lost = [r["index"] for r in before["runs"] if r["worker"] == victim_host]
    start = time.monotonic()
    cut(victim)
    try:
        recovery = time_to_resume(stack, job_id, lost, survivor_host, start)
        doc = finished(stack, job_id)
        total = round(time.monotonic() - start, 1)
    finally:
        restore(victim)
    assert_recorded_once(doc)
    # The lost worker back (its stale attempts' writes refused): the record is unchanged.
    assert job(stack, job_id)["runs"] == doc["runs"]
    for index in lost:
        old, run = before["runs"][index], doc["runs"][index]
        assert run["worker"] == survivor_host
        assert run["attempt"] == old["attempt"] + 1
        # From (at least) the checkpoint seen before the loss, not from zero.
        assert run["resumed_from_step"] is not None
        assert run["resumed_from_step"] >= old["checkpoint_step"] > 0
    results[fault] = {
        "runs_lost": len(lost),
        "resumed_on_the_other_worker_after_s": recovery,
        "job_finished_after_s": total,
        "steps_redone": [
            before["runs"][i]["batch"] - doc["runs"][i]["resumed_from_step"] for i in lost
        ],
    }
    stack.scale_workers(2)


def test_the_image_is_the_production_image_with_the_locked_packages(stack: Stack) -> None:
    image = podman.inspect("localhost/initlab:latest")
    assert image["Config"]["User"] == "10001:10001"
    assert "/healthz" in " ".join(image["Healthcheck"]["Test"])  # kept: --format docker
    # The build's pip configuration (CA bundle, local indexes) was mounted, never baked in:
    # the only PIP_* variables are the Dockerfile's own.
    pip_env = {e.partition("=")[0] for e in image["Config"]["Env"] if e.startswith("PIP_")}
    dockerfile = (podman.ROOT / "Dockerfile").read_text()
    assert pip_env == set(re.findall(r"\b(PIP_\w+)=", dockerfile)), pip_env
    probe = (
        "import json, os, subprocess, sys;"
        "cache = os.environ['NUMBA_CACHE_DIR'];"
        "print(json.dumps({'uid': os.getuid(),"
        " 'kernels': sum(len(f) for _, _, f in os.walk(cache)),"
        " 'fashion': os.path.isdir('/usr/share/datasets/fashion-mnist'),"
        " 'freeze': subprocess.run([sys.executable, '-m', 'pip', 'freeze'],"
        " capture_output=True, text=True).stdout,"
        " 'pip_config': subprocess.run([sys.executable, '-m', 'pip', 'config', 'list'],"
        " capture_output=True, text=True).stdout}))"
    )
    out = podman.podman("run", "--rm", "localhost/initlab:latest", "python", "-c", probe)
    facts = json.loads(out)
    assert facts["uid"] == 10001
    assert facts["kernels"] > 0  # compiled at build time
    assert facts["fashion"]
    # No pip configuration file in the image (its empty mount point at most): `pip config list`
    # shows only the Dockerfile's own PIP_* variables (as ":env:.<option>").
    from_files = [line for line in facts["pip_config"].splitlines() if not line.startswith(":env:")]
    assert from_files == [], facts["pip_config"]
    installed = {
        re.sub(r"[-_.]+", "-", name).lower(): version
        for name, _, version in (line.partition("==") for line in facts["freeze"].splitlines())
    }
    lock = (podman.ROOT / "requirements.lock").read_text()
    pins = re.findall(r"^([A-Za-z0-9][\w.-]*)==(\S+)", lock, flags=re.M)
    assert pins
    for name, version in pins:
        assert installed.get(re.sub(r"[-_.]+", "-", name).lower()) == version, name


def test_every_healthcheck_passes_and_the_api_is_ready(stack: Stack) -> None:
    names = stack.containers("redis") + stack.containers("api") + stack.containers("worker")
    assert len(names) == 4
    for name in names:
        assert stack.healthy(name), name
    ready = stack.wait_ready(2)
    assert ready["status"] == "ready"
    assert {stack.hostname(n) for n in stack.containers("worker")} <= set(ready["workers"])


def test_a_jobs_runs_spread_over_both_worker_containers(
    stack: Stack, results: dict[str, Any]
) -> None:
    start = time.monotonic()
    doc = finished(stack, submit(stack))
    results["job_4_runs_seconds"] = round(time.monotonic() - start, 1)
    assert_recorded_once(doc)
    hosts = {stack.hostname(n) for n in stack.containers("worker")}
    assert {run["worker"] for run in doc["runs"]} == hosts


def test_a_killed_workers_runs_resume_on_the_other_from_their_checkpoints(
    stack: Stack, results: dict[str, Any]
) -> None:
    lose_a_worker(
        stack,
        results,
        "worker_killed",
        cut=lambda name: podman.podman("kill", name),
        restore=lambda name: podman.podman("start", name),
    )


def test_a_cut_off_workers_runs_resume_on_the_other_from_their_checkpoints(
    stack: Stack, results: dict[str, Any]
) -> None:
    def restore(name: str) -> None:
        podman.podman("network", "connect", NETWORK, name)
        # Its attempts are stale now (their writes are refused); a fresh process.
        podman.podman("restart", "--time", "5", name, timeout=120)

    lose_a_worker(
        stack,
        results,
        "worker_cut_off",
        cut=lambda name: podman.podman("network", "disconnect", NETWORK, name),
        restore=restore,
    )


def test_no_queued_or_running_job_is_lost_when_redis_restarts(
    stack: Stack, results: dict[str, Any]
) -> None:
    running = submit(stack)
    queued = submit(stack, schemes=SCHEMES[:2])  # behind the first: every slot is taken
    wait_until(
        lambda: all(r["status"] == "running" for r in job(stack, running)["runs"]),
        JOB_TIMEOUT,
        "the first job running",
    )
    assert job(stack, queued)["status"] == "queued"
    time.sleep(1.5)  # past one appendfsync (everysec)
    start = time.monotonic()
    (redis,) = stack.containers("redis")
    podman.podman("restart", "--time", "5", redis, timeout=120)
    stack.wait_healthy([redis])
    restarted = round(time.monotonic() - start, 1)
    # The API answers 503 (Redis unavailable) until Redis has loaded its AOF.
    wait_until(lambda: job(stack, running), JOB_TIMEOUT, "the API reading Redis again")
    answers = round(time.monotonic() - start, 1)
    docs = [finished(stack, job_id) for job_id in (running, queued)]
    total = round(time.monotonic() - start, 1)
    assert_recorded_once(docs[0])
    assert_recorded_once(docs[1])
    results["redis_restarted"] = {
        "restart_s": restarted,
        "api_reads_jobs_again_after_s": answers,
        "both_jobs_finished_after_s": total,
        "attempts": [r["attempt"] for d in docs for r in d["runs"]],
    }


def test_the_api_restarting_loses_nothing_and_sse_resumes_with_last_event_id(
    stack: Stack, results: dict[str, Any]
) -> None:
    job_id = submit(stack)
    seen: list[str] = []
    with httpx.Client(base_url=stack.api.base_url, timeout=60) as client:
        with httpx_sse.connect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
            for event in source.iter_sse():
                seen.append(event.id)
                if event.event == "points" and len(seen) > 20:
                    break
        (api,) = stack.containers("api")
        start = time.monotonic()
        podman.podman("restart", "--time", "5", api, timeout=120)
        stack.wait_ready(1)
        back = round(time.monotonic() - start, 1)
        resumed: list[httpx_sse.ServerSentEvent] = []
        with httpx_sse.connect_sse(
            client, "GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": seen[-1]}
        ) as source:
            assert source.response.status_code == 200
            resumed = list(source.iter_sse())  # to the end event
    doc = finished(stack, job_id)
    assert_recorded_once(doc)
    ids = [e.id for e in resumed]
    assert resumed and resumed[-1].event == "end"
    assert not set(ids) & set(seen)  # after the last id seen, nothing twice
    assert len(ids) == len(set(ids))
    results["api_restarted"] = {"api_back_after_s": back, "events_before": len(seen)}


def test_finished_jobs_survive_compose_down_and_up(stack: Stack, results: dict[str, Any]) -> None:
    listing = stack.api.get("/v1/jobs", params={"limit": 100})
    assert listing.status_code == 200, listing.text
    before = {j["id"]: j["status"] for j in listing.json()["jobs"]}
    assert before and set(before.values()) == {"succeeded"}
    start = time.monotonic()
    podman.down(volumes=False)
    assert not stack.containers("api", all_states=True)
    assert not stack.containers("worker", all_states=True)
    podman.compose("up", "-d", "--no-build", "--scale", "worker=2")
    stack.wait_healthy(stack.containers("redis") + stack.containers("api"))
    stack.scale_workers(2)
    results["down_up_s"] = round(time.monotonic() - start, 1)
    for job_id, status in before.items():
        doc = job(stack, job_id)
        assert doc["status"] == status
        assert_recorded_once(doc)


def test_bad_input_through_the_stack_is_a_problem_naming_the_field(stack: Stack) -> None:
    spec = job_spec()
    spec["training"]["steps"] = -1
    res = stack.api.post("/v1/jobs", json=spec)
    assert res.status_code == 422
    assert res.headers["content-type"].startswith("application/problem+json")
    assert "steps" in res.text
