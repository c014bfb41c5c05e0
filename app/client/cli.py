"""``initlab jobs|tensors|initializers|datasets|presets|models``: the client commands, next to
``initlab run`` / ``initlab redis`` (app/cli.py registers them with :func:`add_commands`).

Every command takes ``--url`` (``$INITLAB_URL``), ``--api-key`` (``$INITLAB_API_KEY``) and
``--json``, and ends with an :class:`~app.client.exit_codes.ExitCode`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from app.client.exit_codes import ExitCode


def _shape(text: str) -> list[int]:
    try:
        return [int(n) for n in text.strip("[]() ").split(",") if n.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a shape is comma-separated integers, not {text!r}"
        ) from None


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("server")
    group.add_argument("--url", help="server base URL (default: $INITLAB_URL, else :8000 local)")
    group.add_argument("--api-key", help="API key (default: $INITLAB_API_KEY)")
    group.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    group.add_argument("--json", action="store_true", help="machine output: JSON on stdout")
    return common


_COMMON = _common_options()


def _leaf(parent: Any, name: str, handler: str, text: str) -> argparse.ArgumentParser:
    """A command that runs ``app.client.commands.<handler>`` through :func:`dispatch` (that
    module and rich are imported only then, not for ``initlab run``)."""
    parser: argparse.ArgumentParser = parent.add_parser(name, parents=[_COMMON], help=text)
    parser.set_defaults(func=dispatch, handler=handler)
    return parser


def _jobs(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="training-comparison jobs (client)")
    actions = jobs.add_subparsers(dest="action", required=True)

    submit = _leaf(actions, "submit", "jobs_submit", "post a job")
    submit.add_argument("spec", nargs="?", help="a job spec JSON file, or - for stdin")
    submit.add_argument("--preset", help="a preset name (initlab presets lists them)")
    submit.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field, e.g. repeats=3, training.epochs=1 or "
        "schemes.0.initializer=he_normal (VALUE is JSON or text)",
    )
    submit.add_argument("--key", help="Idempotency-Key (default: a fresh UUID)")
    submit.add_argument("--watch", action="store_true", help="follow it with progress bars")

    _leaf(actions, "watch", "jobs_watch", "follow a job to its end").add_argument("id")

    listing = _leaf(actions, "list", "jobs_list", "your jobs, newest first")
    listing.add_argument("--limit", type=int, default=20, help="jobs per page (1-100)")
    listing.add_argument("--cursor", help="the page after this cursor")
    listing.add_argument("--all", action="store_true", help="every page")
    listing.add_argument(
        "--status",
        action="append",
        help="only jobs with this status (queued, running, succeeded, failed, cancelled); "
        "repeat it or give several comma-separated",
    )

    _leaf(actions, "show", "jobs_show", "a job: status, runs, summary").add_argument("id")
    _leaf(actions, "cancel", "jobs_cancel", "cancel a queued or running job").add_argument("id")

    report = _leaf(actions, "report", "jobs_report", "report.png/.svg or CSV")
    report.add_argument("id")
    report.add_argument("-o", "--output", help="file (its suffix picks the format); - = stdout")
    report.add_argument("--format", choices=["png", "svg", "csv", "summary-csv"])


def _others(sub: Any) -> None:
    tensors = sub.add_parser("tensors", help="initialized tensors (client)")
    actions = tensors.add_subparsers(dest="action", required=True)
    get = _leaf(actions, "get", "tensors_get", "one tensor: to a file, or its stats")
    get.add_argument("--shape", type=_shape, required=True, help="e.g. 784,256 ([] = scalar)")
    get.add_argument("--initializer", default="glorot_uniform", help="any name, or JSON")
    get.add_argument("--seed", type=int)
    get.add_argument("--dtype", default="float32")
    get.add_argument("--layout", choices=["keras", "torch"])
    get.add_argument("--fan-in", type=int)
    get.add_argument("--fan-out", type=int)
    get.add_argument("--compat", choices=["keras"])
    get.add_argument("-o", "--output", help="file: .npy, .safetensors, .json, else raw bytes")
    get.add_argument("--format", choices=["binary", "npy", "safetensors", "json"])

    inits = _leaf(sub, "initializers", "initializers", "the initializer catalog (client)")
    inits.add_argument("name", nargs="?", help="one scheme, by any alias")

    datasets = sub.add_parser("datasets", help="built-in datasets and uploads (client)")
    actions = datasets.add_subparsers(dest="action", required=True)
    _leaf(actions, "list", "datasets_list", "built-in datasets and your uploads")
    upload = _leaf(actions, "upload", "datasets_upload", "upload an .npz")
    upload.add_argument("file")
    upload.add_argument("--name")
    upload.add_argument("--task", choices=["multiclass", "binary", "regression"])
    _leaf(actions, "delete", "datasets_delete", "delete an upload").add_argument("id")

    _leaf(sub, "presets", "presets", "the job presets (client)").add_argument("name", nargs="?")

    models = sub.add_parser("models", help="whole models' initial weights (client)")
    actions = models.add_subparsers(dest="action", required=True)
    create = _leaf(actions, "create", "models_create", "post a model spec")
    create.add_argument("spec", help="a JSON file (layer list or topology), or - for stdin")
    download = _leaf(actions, "download", "models_download", "an artifact to a file")
    download.add_argument("id")
    download.add_argument("-o", "--output", required=True, help="its suffix picks the artifact")
    download.add_argument("--artifact", help="e.g. weights.npz (default: from -o's suffix)")


def add_commands(sub: Any) -> None:
    """Register the client commands on ``initlab``'s subparsers (``func`` = :func:`dispatch`)."""
    _jobs(sub)
    _others(sub)


def dispatch(args: argparse.Namespace) -> int:
    """Run a client command: problems, a server that is down and bad arguments become their
    exit codes with one line on stderr (a JSON object with ``--json``)."""
    from rich.console import Console

    from app.client import Client, ProblemError, ServerDownError, commands

    out = commands.Output(args.json, _console(Console, False), _console(Console, True))
    handler: commands.Handler = getattr(commands, args.handler)
    try:
        with Client(args.url, args.api_key, timeout=args.timeout) as client:
            code = handler(client, args, out)
            return code
    except ProblemError as exc:
        where = f" [{exc.field}]" if exc.field and exc.field not in exc.detail else ""
        message = f"{exc.status} {exc.title}: {exc.detail}{where}"
        _error(out, message, status=exc.status, field=exc.field, errors=exc.errors)
        return ExitCode.CLIENT_ERROR if exc.status < 500 else ExitCode.SERVER_ERROR
    except ServerDownError as exc:
        _error(out, str(exc), url=exc.url, attempts=exc.attempts)
        return ExitCode.SERVER_DOWN
    except argparse.ArgumentTypeError as exc:
        _error(out, str(exc))
        return ExitCode.USAGE
    except (OSError, ValueError) as exc:
        _error(out, str(exc))
        return ExitCode.ERROR
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def _console(console: Any, stderr: bool) -> Any:
    """A rich console that never wraps lines of text; tables get 160 columns when the output
    is not a terminal (a pipe, a file) instead of rich's 80."""
    made = console(stderr=stderr, soft_wrap=True)
    return made if made.is_terminal else console(stderr=stderr, soft_wrap=True, width=160)


def _error(out: Any, message: str, **fields: Any) -> None:
    if out.json:
        sys.stderr.write(json.dumps({"error": message, **fields}) + "\n")
    else:
        out.say(f"error: {message}")
