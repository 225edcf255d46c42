"""What the benchmarks share: the benchmark database and Redis, processes and their CPU time.

Not a benchmark itself (``make bench`` skips files starting with ``_``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

# Only the standard library and requests at module level: the load clients are spawned
# processes that re-import this module, and they should stay light.

CLK_TCK = os.sysconf("SC_CLK_TCK")


def stand_aside() -> None:
    """Make this load-client process yield to the server it drives (Linux; elsewhere nothing).

    The clients stand for browsers and relying parties on other machines, but on a small box
    they share the server's cores. Under SCHED_BATCH they still get their fair share of CPU,
    but their wake-ups do not preempt whatever runs: without it, every answer that wakes a
    client can interrupt a server process mid-request — an argon2 verify loses its caches that
    way — which no external client would do. It needs no privileges.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


class Unreachable(Exception):
    """Something the run needs (PostgreSQL, Redis, Node) is missing; the message says what."""


def _libpq_url(url: str) -> str:
    """A SQLAlchemy-style URL (``postgresql+psycopg://``) as libpq understands it."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


def _admin_connect(admin_url: str) -> Any:
    import psycopg

    try:
        return psycopg.connect(_libpq_url(admin_url), autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        raise Unreachable(f"cannot reach PostgreSQL at {admin_url}: {reason}") from None


def bench_database_url(admin_url: str, name: str) -> str:
    """The admin URL with its database replaced by ``name``."""
    parts = urlsplit(_libpq_url(admin_url))
    return parts._replace(path="/" + name).geturl()


def recreate_database(admin_url: str, name: str) -> None:
    """Drop and create database ``name`` (FORCE ends connections a crashed run left behind)."""
    with _admin_connect(admin_url) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")


def drop_database(admin_url: str, name: str) -> None:
    """Remove the benchmark database."""
    with _admin_connect(admin_url) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def clear_redis(redis_url: str, prefix: str) -> int:
    """Delete the keys under ``prefix`` from the benchmark's Redis database."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        return len(keys)
    except redis.RedisError as exc:
        raise Unreachable(f"cannot reach Redis at {redis_url}: {exc}") from None
    finally:
        client.close()


def stop_processes(procs: Sequence[Any], grace: float) -> None:
    """Join helper processes for up to ``grace`` seconds each, then terminate what is left."""
    for proc in procs:
        if grace:
            proc.join(timeout=grace)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may contain spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process, in seconds (None when it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After the name: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    # utime stime → indexes 11 and 12.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def all_pids() -> list[int]:
    """Every process id visible in /proc."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children_of(parent: int) -> list[int]:
    """Direct children of ``parent`` (gunicorn's workers)."""
    found = []
    for pid in all_pids():
        fields = _stat_fields(pid)
        if fields is not None and int(fields[1]) == parent:
            found.append(pid)
    return found


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def database_backends(name: str) -> list[int]:
    """PostgreSQL backends serving the benchmark database (their title names it)."""
    return [pid for pid in all_pids() if f" {name} " in f" {cmdline(pid)} "]


def redis_servers() -> list[int]:
    """redis-server processes on this machine (shared with anything else using Redis)."""
    return [pid for pid in all_pids() if cmdline(pid).startswith("redis-server")]


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU-seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


@dataclass
class CpuSnapshot:
    """CPU-seconds per process and for the machine at one instant."""

    processes: dict[int, float]
    busy: float
    total: float

    @classmethod
    def take(cls, pids: Iterable[int]) -> CpuSnapshot:
        """Read every pid's CPU time and the machine's, now."""
        seconds = {pid: s for pid in set(pids) if (s := cpu_seconds(pid)) is not None}
        busy, total = machine_busy_seconds()
        return cls(seconds, busy, total)


def used_between(before: CpuSnapshot, after: CpuSnapshot, pids: Iterable[int]) -> float:
    """CPU-seconds ``pids`` used between two snapshots (a process born in between counts all)."""
    return sum(after.processes.get(p, 0.0) - before.processes.get(p, 0.0) for p in set(pids))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def wait_until_ready(
    url: str, server: subprocess.Popen[bytes], log: Path, label: str, seconds: float = 30
) -> None:
    """Block until ``url`` answers 200; exit naming ``label`` if the server dies or never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"{label} exited at start:\n{tail(log)}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{label} did not become ready in {seconds:.0f} s:\n{tail(log)}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM (gunicorn's master stops its workers); SIGKILL what is left after 15 s."""
    children = children_of(server.pid)
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
    for pid in children:  # orphans of a master that had to be killed
        if "gunicorn" in cmdline(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def start_gunicorn(
    env: dict[str, str],
    workers: int,
    port: int,
    log: Path,
    *,
    threads: int = 4,
    max_requests: int | None = None,
) -> subprocess.Popen[bytes]:
    """The IdP under gunicorn with deploy/gunicorn.conf.py, as its systemd unit runs it:
    ``workers`` gthread workers with ``threads`` threads each and keep-alive (gthread with one
    thread too, where the config alone would pick sync workers).

    ``max_requests`` overrides the worker recycling of the deploy settings (2000 requests): a
    run that serves more than that per worker would otherwise also measure workers restarting.
    """
    root = Path(__file__).resolve().parents[1]
    server_env = {
        **env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "GUNICORN_WORKER_CLASS": "gthread",
    }
    if max_requests is not None:
        server_env["GUNICORN_MAX_REQUESTS"] = str(max_requests)
    config = str(root / "deploy" / "gunicorn.conf.py")
    with log.open("wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", config, "idp:create_app()"],
            cwd=root,
            env=server_env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
