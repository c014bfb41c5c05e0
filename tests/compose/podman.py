"""podman for the compose tests: an isolated storage and configuration, the stand-in base
images, and ``podman`` / ``podman-compose`` commands run with them.

Everything lives under ``STATE`` (default ``/var/tmp/initlab-podman``, ``INITLAB_PODMAN_DIR``
overrides): the image storage, the networks and the ``containers.conf`` that makes podman use
runc with limits it may set here. Nothing of the host's podman storage is touched.

Image registries are out of reach, so the Dockerfile's and compose file's base images are
stand-ins built from Debian packages (``debootstrap --variant=minbase bookworm``) and tagged
with the names the production files use, in this storage only:

- ``python:3.11-slim-bookworm``: Debian's python3.11 with ``python`` and ``pip`` on PATH and
  pip allowed to install system-wide, as in the official image;
- ``redis:7-alpine``: Debian's redis-server and redis-cli, working directory ``/data``.

The rootfs is built once per ``STANDIN_KEY`` (its packages and this recipe) and kept as a
tarball beside the storage, so later runs on the machine import it in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("INITLAB_PODMAN_DIR", "/var/tmp/initlab-podman"))
OVERRIDE = Path(__file__).with_name("compose.test.yml")
PROJECT = "initlab-compose-test"
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
PACKAGES = ("python3.11", "python3-pip", "redis-server", "redis-tools")
PYTHON_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
REDIS_IMAGE = "docker.io/library/redis:7-alpine"
# pip options the image build takes from this machine's pip configuration, when set: a CA
# bundle to trust, and local package indexes (file: paths).
PIP_FILE_OPTION = "cert"
PIP_INDEX_OPTIONS = ("index-url", "extra-index-url", "find-links")
# Bumped when the recipe below changes: the cached rootfs is built again.
RECIPE = "1"
STANDIN_KEY = hashlib.sha256(json.dumps([RECIPE, MIRROR, SUITE, PACKAGES]).encode()).hexdigest()[
    :16
]

CONTAINERS_CONF = f"""\
# Written by tests/compose/podman.py: crun refuses this machine's cgroups, and raising or
# keeping the host's limits is refused, so runc with these limits.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"

[network]
network_config_dir = "{STATE}/networks"
"""

STORAGE_CONF = f"""\
[storage]
driver = "overlay"
graphroot = "{STATE}/storage"
runroot = "{STATE}/run"
"""


def missing() -> str:
    """Why podman cannot run the compose tests here ('' when it can)."""
    if os.geteuid() != 0:
        return "the compose tests run podman as root (rootless podman is not set up here)"
    tools = {
        "podman": shutil.which("podman"),
        "runc": shutil.which("runc"),
        "debootstrap": shutil.which("debootstrap"),
        "podman-compose": compose_binary(),
    }
    absent = [name for name, path in tools.items() if not path]
    if absent:
        return (
            f"{', '.join(absent)} not installed"
            " (apt-get install podman runc debootstrap; podman-compose: the dev extras)"
        )
    return ""


def compose_binary() -> str | None:
    beside = Path(sys.executable).parent / "podman-compose"
    return str(beside) if beside.exists() else shutil.which("podman-compose")


def environment() -> dict[str, str]:
    """The environment every podman command of the tests runs with (configuration files
    written on first use)."""
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "networks").mkdir(exist_ok=True)
    conf, storage = STATE / "containers.conf", STATE / "storage.conf"
    for path, text in ((conf, CONTAINERS_CONF), (storage, STORAGE_CONF)):
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    env = dict(os.environ)
    env.update(CONTAINERS_CONF=str(conf), CONTAINERS_STORAGE_CONF=str(storage))
    return env


def _run(command: list[str], timeout: float, check: bool) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command,
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} → {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    """Run ``podman args``; its stdout (RuntimeError with its output if it fails and
    ``check``)."""
    return _run(["podman", *args], timeout, check).stdout


def compose(*args: str, timeout: float = 300, check: bool = True) -> str:
    """Run ``podman-compose`` on docker-compose.yml plus the test override, containers
    outside a pod (each its own network namespace: one can be cut off); its output."""
    binary = compose_binary()
    assert binary, "podman-compose not installed (dev extra)"
    files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(OVERRIDE)]
    command = [binary, "--project-name", PROJECT, "--in-pod=false", *files, *args]
    result = _run(command, timeout, check)
    return result.stdout + result.stderr


def down(*, volumes: bool) -> None:
    """``podman-compose down``, then whatever it leaves: podman-compose 1.6 removes only the
    first replica of a scaled service (the other workers, and Redis they depend on, stay)."""
    compose("down", *(["--volumes"] if volumes else []), check=False, timeout=300)
    label = f"label=io.podman.compose.project={PROJECT}"
    for service in ("worker", "api", "redis"):  # dependents first
        names = podman(
            "ps", "--all", "--quiet", "--filter", label,
            "--filter", f"label=com.docker.compose.service={service}",
        ).split()  # fmt: skip
        if names:
            podman("rm", "--force", "--time", "5", *names, timeout=120)
    if volumes:
        names = podman("volume", "ls", "--quiet", "--filter", label).split()
        if names:
            podman("volume", "rm", "--force", *names)


def build(timeout: float) -> None:
    """``podman-compose build`` of the production image with :func:`build_args`."""
    # The api service only: the worker runs the same image (one build, not two at once).
    args = f"--podman-build-args={shlex.join(build_args())}"
    compose(args, "build", "api", timeout=timeout)


def _local_paths(value: str) -> list[str]:
    """The entries of a pip option's value that are local directories, as written."""
    return [v for v in value.split() if Path(v.removeprefix("file://")).is_dir()]


def build_pip_config() -> tuple[str, list[str]]:
    """The pip configuration the image build needs from this machine's (``pip config list``:
    its files and ``PIP_*`` variables): the CA bundle and the local package indexes, if it
    names any; the text of a ``pip.conf`` and the host paths the build must see."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    options: dict[str, list[str]] = {}
    for line in listed.splitlines():
        name, _, value = line.partition("=")
        option, value = name.rpartition(".")[2], value.strip().strip("'\"")
        if option == PIP_FILE_OPTION and Path(value).is_file():
            options[option] = [value]
        elif option in PIP_INDEX_OPTIONS:
            entries = options.setdefault(option, [])
            entries.extend(p for p in _local_paths(value) if p not in entries)
    options = {k: v for k, v in options.items() if v}
    text = "".join(f"{k} = {' '.join(v)}\n" for k, v in options.items())
    paths = [p.removeprefix("file://") for v in options.values() for p in v]
    # A simple index's pages link to files beside it (../files): mount its parent.
    mounts = [str(Path(p).parent) if Path(p).name == "simple" else p for p in paths]
    return (f"[global]\n{text}" if text else ""), list(dict.fromkeys(mounts))


def build_args() -> list[str]:
    """``--podman-build-args`` for the image build: ``--format docker``, and the pip
    configuration of :func:`build_pip_config` as ``/etc/pip.conf`` with the paths it names,
    mounted read-only. Build volumes exist for the build's RUN steps only: the image keeps at
    most their empty mount points, none of their content (``--env`` would be baked in)."""
    text, mounts = build_pip_config()
    args = ["--format=docker"]
    if text:
        conf = STATE / "build-pip.conf"
        STATE.mkdir(parents=True, exist_ok=True)
        conf.write_text(text)
        args.append(f"--volume={conf}:/etc/pip.conf:ro")
    return args + [f"--volume={m}:{m}:ro" for m in mounts]


def image_exists(name: str) -> bool:
    """Whether ``name`` is the stand-in of this recipe (its label carries STANDIN_KEY)."""
    found = podman(
        "image", "inspect", "--format", '{{index .Labels "initlab.standin"}}', name, check=False
    )
    return found.strip() == STANDIN_KEY


def _rootfs_tarball() -> Path:
    tarball = STATE / f"rootfs-{SUITE}-{STANDIN_KEY}.tar"
    if tarball.exists():
        return tarball
    with tempfile.TemporaryDirectory(dir=STATE, prefix="debootstrap-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(rootfs),
                MIRROR,
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        # As the official python image: `python` and `pip` on PATH, installs system-wide.
        for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
            (rootfs / "usr/local/bin" / name).symlink_to(target)
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        (rootfs / "data").mkdir(exist_ok=True)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."],
            check=True,
            timeout=300,
        )
        partial.rename(tarball)
    return tarball


def standin_images() -> dict[str, float]:
    """Build (or find) both stand-ins in the test storage; seconds each step took."""
    seconds: dict[str, float] = {}
    if image_exists(PYTHON_IMAGE) and image_exists(REDIS_IMAGE):
        return seconds
    start = time.monotonic()
    tarball = _rootfs_tarball()
    seconds["debootstrap"] = time.monotonic() - start
    start = time.monotonic()
    label = f"LABEL initlab.standin={STANDIN_KEY}"
    common = ["--change", label, "--change", "ENV LANG=C.UTF-8"]
    podman(
        "import", *common, "--change", 'CMD ["python3"]', str(tarball), PYTHON_IMAGE, timeout=600
    )
    podman(
        "import",
        *common,
        "--change",
        "WORKDIR /data",
        "--change",
        'CMD ["redis-server"]',
        str(tarball),
        REDIS_IMAGE,
        timeout=600,
    )
    seconds["import"] = time.monotonic() - start
    return seconds


def inspect(name: str) -> dict[str, Any]:
    data = json.loads(podman("inspect", name))
    assert isinstance(data, list) and data
    first: dict[str, Any] = data[0]
    return first


if __name__ == "__main__":  # build the stand-ins ahead: python tests/compose/podman.py
    print(standin_images())
