"""What moving bytes over loopback TCP costs this machine, with no HTTP and nothing generated.

The floor under any server's ``weights.bin``: whatever the server does, the body's bytes must
be sent by it and received by the client, and on one machine both run on the same cores as
the generation. A sender thread writes prebuilt bytes in 4 MiB pieces (the cheapest piece
size measured: 96 MiB in one ``sendall`` costs ~40 % more CPU, 256 KiB pieces ~25 % more)
to a receiver process that reads into a 1 MiB buffer, as ``bench_models``'s socket client.

    .venv/bin/python bench/loopback.py [--mib 96] [--repeats 15]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

PIECE = 4 << 20

_RECEIVER = r"""
import socket, sys, time
port, size, repeats = map(int, sys.argv[1:])
buffer = memoryview(bytearray(1 << 20))
for _ in range(repeats):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        start, got = time.process_time(), 0
        while got < size:
            n = sock.recv_into(buffer)
            if not n:
                raise SystemExit(f"closed after {got} of {size} bytes")
            got += n
        print(time.process_time() - start, flush=True)
"""


@dataclass(frozen=True)
class Transfer:
    """Per transfer of one body, seconds: wall time, the sender's CPU, the receiver's CPU."""

    wall: list[float]
    send_cpu: list[float]
    recv_cpu: list[float]

    @property
    def cpu(self) -> float:
        """The median CPU of one transfer, both ends together."""
        return statistics.median(self.send_cpu) + statistics.median(self.recv_cpu)


def measure(size: int, repeats: int) -> Transfer:
    """Send ``size`` bytes to a receiver process ``repeats`` times, one connection each."""
    body = memoryview(bytearray(size))
    body[:] = bytes(range(256)) * (size // 256) + bytes(size % 256)
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(60)  # a receiver that died before connecting: TimeoutError, no hang
        port = server.getsockname()[1]
        cmd = [sys.executable, "-c", _RECEIVER, str(port), str(size), str(repeats)]
        receiver = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        wall: list[float] = []
        send_cpu: list[float] = []
        for _ in range(repeats):
            conn, _ = server.accept()
            with conn:
                t0, c0 = time.perf_counter(), time.thread_time()
                for offset in range(0, size, PIECE):
                    conn.sendall(body[offset : offset + PIECE])
                send_cpu.append(time.thread_time() - c0)
                conn.shutdown(socket.SHUT_WR)
                conn.recv(1)  # the receiver has read everything and closed
                wall.append(time.perf_counter() - t0)
        out, _ = receiver.communicate(timeout=60)
    if receiver.returncode:
        raise RuntimeError(f"receiver exited {receiver.returncode}")
    return Transfer(wall, send_cpu, [float(line) for line in out.split()])


def ceiling(gen_wall: float, gen_cpu: float, transfer_cpu: float, cores: int) -> float:
    """The best ratio in-process generation / GET that any server could reach here, however
    well it overlaps sending with generating: the GET needs the generation's CPU and the
    transfer's, spread at best over ``cores``."""
    return min(1.0, gen_wall / ((gen_cpu + transfer_cpu) / cores))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    t = measure(args.mib << 20, args.repeats)
    ms = [1000 * statistics.median(xs) for xs in (t.wall, t.send_cpu, t.recv_cpu)]
    print(f"{args.mib} MiB over loopback: wall {ms[0]:.1f} ms, send CPU {ms[1]:.1f} ms, ", end="")
    print(f"receive CPU {ms[2]:.1f} ms (medians of {args.repeats})")


if __name__ == "__main__":
    main()
