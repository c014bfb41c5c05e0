"""Exit codes of the client commands (docs/client.md): a script can branch on them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # anything else: a local file that cannot be read, an unexpected answer
    USAGE = 2  # bad arguments (argparse's own code)
    CLIENT_ERROR = 3  # the server refused the request: a 4xx problem+json
    SERVER_DOWN = 4  # no answer: refused, unreachable or timed out, after the retries
    SERVER_ERROR = 5  # a 5xx (503: Redis unreachable on the server)
    JOB_FAILED = 6  # a watched job ended failed
    JOB_CANCELLED = 7  # a watched job ended cancelled
    INTERRUPTED = 130  # Ctrl-C while watching (the job keeps running)
