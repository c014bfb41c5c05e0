"""The ``initlab`` client commands run as subprocesses against a real API + worker + Redis:
their output and their exit codes (0 ok, 3 a 4xx, 6 a failed job, 7 a cancelled one, 130
Ctrl-C while watching, which leaves the job running)."""

from __future__ import annotations

import io
import json
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from client_helpers import run_cli, start_cli, wait_status, wait_text

from app.client import Client
from app.client.exit_codes import ExitCode

pytestmark = pytest.mark.integration
QUICK = ["--preset", "dlai-circles", "--set", "repeats=1", "--set", "training.steps=40"]
LONG = ["--preset", "dlai-circles", "--set", "repeats=1", "--set", "training.steps=15000"]


@pytest.fixture
def client(api_server: str) -> Iterator[Client]:
    with Client(api_server) as c:
        yield c


def _submitted_id(text: str) -> str:
    match = re.search(r"submitted (job_[0-9a-f]+)", text)
    assert match, text
    return match.group(1)


def test_tensors_get_writes_the_servers_npy_and_reports_the_seed(
    api_server: str, tmp_path: Path
) -> None:
    args = ["tensors", "get", "--shape", "784,256", "--initializer", "he_normal", "--seed", "1"]
    done = run_cli(api_server, *args, "-o", str(tmp_path / "w.npy"), "--json")
    assert done.returncode == 0, done.stderr
    meta = json.loads(done.stdout)
    assert meta["seed"] == 1 and meta["shape"] == [784, 256] and meta["format"] == "npy"
    assert meta["initializer"]["class_name"] == "HeNormal"
    query = {"shape": "784,256", "initializer": "he_normal", "seed": "1", "format": "npy"}
    served = httpx.get(f"{api_server}/v1/tensors", params=query).content
    assert (tmp_path / "w.npy").read_bytes() == served
    assert np.load(tmp_path / "w.npy").shape == (784, 256)

    done = run_cli(api_server, *args[:-2], "--initializer", "xavier_uniform_", "--seed", "5")
    assert done.returncode == 0, done.stderr
    assert "seed: 5" in done.stdout
    assert 'initializer: {"class_name": "XavierUniform"' in done.stdout  # torch's, echoed
    assert '"std": 0.04' in done.stdout  # sqrt(2 / (784 + 256)) = 0.0438


def test_a_refused_request_exits_3_naming_the_field(api_server: str) -> None:
    done = run_cli(api_server, "tensors", "get", "--shape", "3,-2", "--initializer", "he_normal")
    assert done.returncode == ExitCode.CLIENT_ERROR == 3
    assert "422" in done.stderr and "query.shape.1" in done.stderr and done.stdout == ""
    done = run_cli(api_server, "initializers", "he_nrmal", "--json")
    assert done.returncode == 3
    problem = json.loads(done.stderr)
    assert problem["status"] == 404 and problem["field"] == "path.name"
    done = run_cli(api_server, "jobs", "submit", "--preset", "dlai-circles", "--set", "repeats=0")
    assert done.returncode == 3 and "repeats" in done.stderr
    done = run_cli(api_server, "jobs", "submit", "--set", "repeats")  # not key=value
    assert done.returncode == ExitCode.USAGE == 2


def test_initializers_presets_and_datasets(api_server: str, tmp_path: Path) -> None:
    done = run_cli(api_server, "initializers", "kaiming_uniform_")
    assert done.returncode == 0, done.stderr
    assert "he_uniform" in done.stdout or "kaiming_uniform" in done.stdout
    assert "formula:" in done.stdout and "aliases:" in done.stdout
    done = run_cli(api_server, "initializers", "--json")
    catalog = {e["name"]: e for e in json.loads(done.stdout)["initializers"]}
    assert {"he_normal", "orthogonal", "glorot_uniform"} <= set(catalog)
    done = run_cli(api_server, "initializers")
    rows = {line.split()[1]: line.split() for line in done.stdout.splitlines() if "│" in line}
    assert set(rows) == set(catalog)
    for name in ("glorot_uniform", "orthogonal", "kaiming_normal"):
        expected = [v.rpartition(".")[2] for v in catalog[name]["frameworks"].values() if v]
        assert expected and set(expected) <= set(rows[name]), rows[name]

    done = run_cli(api_server, "presets")
    assert "udacity-fashion (7 runs)" in done.stdout

    x = np.random.default_rng(1).normal(size=(50, 2)).astype(np.float32)
    np.savez(tmp_path / "mine.npz", x_train=x, y_train=(x[:, 1] > 0).astype(np.int64))
    done = run_cli(api_server, "datasets", "upload", str(tmp_path / "mine.npz"))
    assert done.returncode == 0, done.stderr
    upload_id = done.stdout.strip()
    assert upload_id.startswith("ds_")
    assert '"dataset": {"name": "upload", "id": "' + upload_id in done.stderr
    listed = json.loads(run_cli(api_server, "datasets", "list", "--json").stdout)
    assert upload_id in {d.get("id") for d in listed["datasets"]}
    assert run_cli(api_server, "datasets", "delete", upload_id).returncode == 0
    done = run_cli(api_server, "datasets", "upload", str(tmp_path / "missing.npz"))
    assert done.returncode == ExitCode.ERROR and "missing.npz" in done.stderr


def test_jobs_submit_watch_ends_with_the_summary_table_then_show_list_report(
    api_server: str, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    start_worker(concurrency=1)
    done = run_cli(api_server, "jobs", "submit", *QUICK, "--watch")
    assert done.returncode == 0, done.stderr
    job_id = _submitted_id(done.stderr)
    for label in ("zeros", "large random", "He"):
        assert label in done.stdout  # the summary table
        assert f"{label} · repeat 0" in done.stderr  # its progress bar
    assert "0.500 ± 0.000" in done.stdout  # zeros: symmetric, chance accuracy
    assert "40/40" in done.stderr and f"job {job_id} succeeded" in done.stderr

    shown = run_cli(api_server, "jobs", "show", job_id)
    assert shown.returncode == 0 and "succeeded" in shown.stdout and "40/40" in shown.stdout
    listed = json.loads(run_cli(api_server, "jobs", "list", "--json").stdout)
    assert job_id in {j["id"] for j in listed["jobs"]}
    out = tmp_path / "r.png"
    assert run_cli(api_server, "jobs", "report", job_id, "-o", str(out)).returncode == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    csv = run_cli(api_server, "jobs", "report", job_id, "--format", "summary-csv")
    assert csv.stdout.splitlines()[0].startswith("scheme,label,")
    assert len(csv.stdout.splitlines()) == 4

    # --json: the job document, then `jobs watch --json` waits for it without bars.
    submitted = run_cli(api_server, "jobs", "submit", *QUICK, "--json")
    doc = json.loads(submitted.stdout)
    assert doc["status"] == "queued"
    watched = run_cli(api_server, "jobs", "watch", doc["id"], "--json")
    assert watched.returncode == 0, watched.stderr
    final = json.loads(watched.stdout)
    assert final["id"] == doc["id"] and final["status"] == "succeeded"
    assert len(final["summary"]) == 3


def test_jobs_list_status_keeps_the_jobs_with_that_status(api_server: str, client: Client) -> None:
    # No worker: the job stays queued until it is cancelled.
    submitted = json.loads(run_cli(api_server, "jobs", "submit", *QUICK, "--json").stdout)

    def listed(*status: str) -> set[str]:
        done = run_cli(api_server, "jobs", "list", "--all", "--limit", "2", *status, "--json")
        assert done.returncode == 0, done.stderr
        return {j["id"] for j in json.loads(done.stdout)["jobs"]}

    assert submitted["id"] in listed("--status", "queued")
    client.jobs.cancel(submitted["id"])
    assert submitted["id"] not in listed("--status", "queued")
    assert submitted["id"] in listed("--status", "running", "--status", "cancelled")
    assert submitted["id"] in listed("--status", "queued,cancelled")
    bad = run_cli(api_server, "jobs", "list", "--status", "done")
    assert bad.returncode == ExitCode.CLIENT_ERROR == 3
    assert "query.status" in bad.stderr and "'done'" in bad.stderr


def test_set_indexes_the_lists_of_a_spec_file_or_a_preset(
    api_server: str, client: Client, tmp_path: Path
) -> None:
    # No worker: the jobs stay queued, and are cancelled at the end.
    spec = {
        "dataset": {"name": "circles", "train_size": 60, "validation_size": 20},
        "training": {"epochs": 1},
        "schemes": [{"label": "a", "initializer": "zeros"}, {"label": "b", "initializer": "ones"}],
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    submitted: list[str] = []

    def submit(*args: str) -> dict[str, Any]:
        done = run_cli(api_server, "jobs", "submit", *args, "--json")
        assert done.returncode == 0, done.stderr
        doc: dict[str, Any] = json.loads(done.stdout)
        submitted.append(doc["id"])
        return doc

    try:
        doc = submit(str(path), "--set", "schemes.1.initializer=he_normal")
        assert [(s["label"], s["initializer"]) for s in doc["spec"]["schemes"]] == [
            ("a", "zeros"),
            ("b", "he_normal"),
        ]
        # A preset's lists: the CLI reads the preset's body, the other schemes stay as they are.
        doc = submit(*QUICK, "--set", "schemes.0.label=all zeros", "--set", "schemes.2.label=He!")
        schemes = doc["spec"]["schemes"]
        assert [s["label"] for s in schemes] == ["all zeros", "large random", "He!"]
        assert schemes[0]["initializer"] == "zeros" and doc["spec"]["training"]["steps"] == 40
        assert schemes[1]["initializer"]["params"]["stddev"] == 10.0
    finally:
        for job_id in submitted:
            client.jobs.cancel(job_id)

    # An index the spec has no list for, or past its end: a local error, nothing sent.
    before = {j.id for j in client.jobs.iter()}
    for args, message in [
        ([*QUICK, "--set", "schemes.3.label=x"], "schemes is a list of 3 items (indexes 0-2)"),
        ([str(path), "--set", "model.hidden_layers.0=8"], "model.hidden_layers is not a list"),
        ([str(path), "--set", "schemes.first.label=x"], "not 'first'"),
    ]:
        done = run_cli(api_server, "jobs", "submit", *args)
        assert done.returncode == ExitCode.USAGE == 2, done.stderr
        assert message in done.stderr and done.stdout == ""
    assert {j.id for j in client.jobs.iter()} == before


def test_a_spec_that_is_not_json_is_named_in_the_error(api_server: str, tmp_path: Path) -> None:
    done = run_cli(api_server, "jobs", "submit", "-", stdin="{bad json")
    assert done.returncode == ExitCode.ERROR == 1
    assert "the job spec in stdin is not valid JSON: Expecting property name" in done.stderr
    path = tmp_path / "spec.json"
    path.write_text("[1, 2,]")
    done = run_cli(api_server, "jobs", "submit", str(path))
    assert done.returncode == 1 and f"the job spec in {path} is not valid JSON" in done.stderr
    path.write_text("[1, 2]")
    done = run_cli(api_server, "jobs", "submit", str(path))
    assert done.returncode == 1 and f"the job spec in {path} must be a JSON object" in done.stderr


def test_the_next_page_hint_keeps_the_page_size(api_server: str, client: Client) -> None:
    ids = [json.loads(run_cli(api_server, "jobs", "submit", *QUICK, "--json").stdout)["id"]]
    ids += [json.loads(run_cli(api_server, "jobs", "submit", *QUICK, "--json").stdout)["id"]]
    try:
        done = run_cli(api_server, "jobs", "list", "--status", "queued", "--limit", "1")
        assert done.returncode == 0, done.stderr
        hint = re.search(r"more: (initlab jobs list .*)", done.stderr)
        assert hint, done.stderr
        command = hint.group(1).split()
        assert command[:7] == ["initlab", "jobs", "list", "--status", "queued", "--limit", "1"]
        # The suggested command gives the next page, of the same size.
        again = run_cli(api_server, *command[1:])
        assert again.returncode == 0 and again.stdout.count("job_") == 1
    finally:
        for job_id in ids:
            client.jobs.cancel(job_id)


def test_a_failed_job_exits_6(
    api_server: str, client: Client, start_worker: Callable[..., Any]
) -> None:
    # The job is accepted while its upload exists; the upload is gone when a worker loads it.
    buf = io.BytesIO()
    x = np.random.default_rng(2).normal(size=(30, 2)).astype(np.float32)
    np.savez(buf, x_train=x, y_train=(x[:, 0] > 0).astype(np.int64))
    upload = client.datasets.upload(buf.getvalue())
    spec = client.presets.get("dlai-circles").body
    spec = {
        **spec,
        "dataset": upload.ref,
        "repeats": 1,
        "training": {**spec["training"], "loss": None, "steps": 20},
    }
    job = client.jobs.submit(spec)
    client.datasets.delete(upload.id)
    start_worker(concurrency=1)
    done = run_cli(api_server, "jobs", "watch", job.id)
    assert done.returncode == ExitCode.JOB_FAILED == 6, done.stderr
    assert f"job {job.id} failed" in done.stderr
    assert client.jobs.get(job.id).status == "failed"


def test_a_job_cancelled_while_watched_exits_7(
    api_server: str, client: Client, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    start_worker(concurrency=1)
    proc = start_cli(api_server, "jobs", "submit", *LONG, "--watch", log_dir=tmp_path)
    try:
        job_id = _submitted_id(wait_text(tmp_path / "err.txt", "submitted", proc))
        assert wait_status(client, job_id, {"running"}) == "running"
        client.jobs.cancel(job_id)
        assert proc.wait(60) == ExitCode.JOB_CANCELLED == 7
    finally:
        proc.kill()
    assert f"job {job_id} cancelled" in (tmp_path / "err.txt").read_text()


def test_ctrl_c_while_watching_exits_130_and_leaves_the_job_running(
    api_server: str, client: Client, start_worker: Callable[..., Any], tmp_path: Path
) -> None:
    start_worker(concurrency=1)
    proc = start_cli(api_server, "jobs", "submit", *LONG, "--watch", log_dir=tmp_path)
    try:
        job_id = _submitted_id(wait_text(tmp_path / "err.txt", "submitted", proc))
        assert wait_status(client, job_id, {"running"}) == "running"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == ExitCode.INTERRUPTED == 130
        err = (tmp_path / "err.txt").read_text()
        assert f"job {job_id} is still running on the server" in err
        assert f"initlab jobs watch {job_id}" in err
        before = client.jobs.get(job_id)
        assert before.status == "running"
        # ... and it goes on training: its batches keep growing after the watcher left.
        deadline = time.monotonic() + 60
        while sum(r.batch for r in client.jobs.get(job_id).runs) <= sum(
            r.batch for r in before.runs
        ):
            assert time.monotonic() < deadline, "the job stopped when the watcher did"
            time.sleep(0.2)
    finally:
        proc.kill()
        client.jobs.cancel(job_id)


def test_with_api_keys_on_the_key_comes_from_the_flag_or_the_environment(
    start_api: Callable[..., Any], start_worker: Callable[..., Any]
) -> None:
    server = start_api(env={"INITLAB_API_KEYS": "cli-key-1,cli-key-2"})
    denied = run_cli(server.url, "jobs", "list")
    assert denied.returncode == 3 and "401" in denied.stderr
    wrong = run_cli(server.url, "jobs", "list", "--api-key", "nope")
    assert wrong.returncode == 3 and "403" in wrong.stderr
    assert run_cli(server.url, "jobs", "list", "--api-key", "cli-key-1").returncode == 0
    by_env = run_cli(server.url, "presets", env={"INITLAB_API_KEY": "cli-key-2"})
    assert by_env.returncode == 0 and "dlai-circles" in by_env.stdout
    # The tensor endpoints stay public.
    assert run_cli(server.url, "tensors", "get", "--shape", "2,2").returncode == 0

    start_worker(concurrency=1)
    done = run_cli(server.url, "jobs", "submit", *QUICK, "--watch", "--api-key", "cli-key-1")
    assert done.returncode == 0, done.stderr
    job_id = _submitted_id(done.stderr)
    mine = json.loads(
        run_cli(server.url, "jobs", "list", "--json", "--api-key", "cli-key-1").stdout
    )
    theirs = run_cli(server.url, "jobs", "list", "--json", env={"INITLAB_API_KEY": "cli-key-2"})
    assert job_id in {j["id"] for j in mine["jobs"]}
    assert job_id not in {j["id"] for j in json.loads(theirs.stdout)["jobs"]}
    other = run_cli(server.url, "jobs", "show", job_id, "--api-key", "cli-key-2")
    assert other.returncode == 3 and "404" in other.stderr


def test_models_create_and_download(api_server: str, tmp_path: Path) -> None:
    spec = {"input_shape": [12], "layers": [{"type": "dense", "units": 4}], "seed": 2}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = run_cli(api_server, "models", "create", str(tmp_path / "spec.json"))
    assert done.returncode == 0, done.stderr
    model_id = done.stdout.splitlines()[0]
    assert "dense/kernel (12, 4) float32" in done.stdout
    created = httpx.post(f"{api_server}/v1/models", json=spec).json()
    assert created["id"] == model_id  # the same spec, the same id
    for name in ("weights.npz", "model.json"):
        out = tmp_path / name
        done = run_cli(api_server, "models", "download", model_id, "-o", str(out))
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == httpx.get(f"{api_server}/v1/models/{model_id}/{name}").content
    done = run_cli(api_server, "models", "download", model_id, "-o", str(tmp_path / "w.txt"))
    assert done.returncode == ExitCode.USAGE and "--artifact" in done.stderr
