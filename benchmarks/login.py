"""Password sign-ins per second per core on the real app, against the bare argon2id verify rate.

What it measures
    The IdP as deployed — gunicorn with deploy/gunicorn.conf.py, PostgreSQL, Redis — serving
    password sign-ins from real HTTP clients: each sign-in is a ``POST /login`` with the right
    password, which must answer 302 to ``/`` and set the SSO cookie (a session really started);
    each virtual user loads the form (``GET /login``, CSRF token) before every sign-in, as a
    browser does (the CSRF secret is renewed at every sign-in, so a form loaded before one is
    void after it: the form's cost is part of each sign-in), and drops the SSO cookie after each
    sign-in so the next one starts a new session. In the same
    run, the bare argon2id verify rate with the app's own parameters (``hasher_from_config`` of
    the app's config) is measured in this process on one core while the others idle, and again
    with one process per core verifying at once, as the server's cores do under load (argon2 is
    memory-hard: cores that verify at the same time share caches and memory bandwidth, and on
    a virtual machine two "cores" are often one physical core's hyperthreads). The load runs in
    slices (``--rounds``), each between two readings of the every-core rate, all pooled: a
    virtual machine's speed drifts by 10 % and more within a minute, and a baseline read only
    before and after one long window can be off either way. The one-core rate is read before
    and after.

How to read it
    * ``bare verify/s/core`` — a sign-in cannot cost less than one verify. Counted per
      CPU-second of the verifying processes, like the server figure below, and read between
      the load slices, pooled (a virtual machine's CPU speed drifts within a run).
      With every core verifying at once it is the ceiling for a server whose cores are all
      busy, which they are under this load; with the other cores idle it is higher (the
      "idle-core" figure, printed for comparison).
    * ``sign-ins/s`` — successful sign-ins per second, all workers together; ``per core`` divides
      by the cores the workers can use, min(workers, nproc). On a small box the load clients run
      on the same cores and take CPU from the server, so this figure is pessimistic. They run
      under SCHED_BATCH (``stand_aside`` in _support.py): their wake-ups do not preempt the
      server mid-request, as clients on other machines would not; measured on a 2-core VM,
      without it an argon2 verify interrupted that way costs the server 2–4 ms more per sign-in.
    * ``sign-ins per server CPU-second`` — successes divided by the CPU time the gunicorn master
      and workers actually consumed (utime + stime from /proc over the measured window): the
      fairest "per core" figure. Time other processes take is not counted, but their cache and
      memory-bandwidth use still slows argon2: a warning is printed when they used more than
      10 % of the machine — then run again on a quiet one.
    * ``ratio`` = sign-ins per server CPU-second ÷ bare verifies per CPU-second with every core
      verifying (like for like: the same contention as the server's). 1.0 would mean a sign-in
      costs the server nothing but its argon2 verify; the target is >= 0.8, i.e. at most 25 %
      on top of argon2 for routing, the form, CSRF, the account lookup, the Redis counters, the
      audit row, the SSO session and the response. The ratio against the idle-core rate is
      printed too; on one core (nproc = 1) the two are the same measurement.
    * ``p50 / p99`` — latency of the POST only, as the client saw it (queueing included).
    * The CPU of PostgreSQL (this database's backends), Redis (the whole server) and the load
      clients over the same window is printed too, so one can see where the machine went.
    * ``one small request … warm / right after an argon2 verify`` — measured in this process
      after the load: a verify sweeps its memory (7 MiB by default) through the core's caches,
      so the Python that follows it runs cold. On a 2-core VM (2026-12-07) it cost a small
      request 3–4 × its warm CPU; in the server that is every part of a sign-in besides
      argon2, which is why the overhead under load is about twice an in-process profile with
      cheap parameters.

Run: ``.venv/bin/python benchmarks/login.py [--seconds 20] [--workers N] [--threads N]
[--clients N]`` (also by ``make bench``); ``--threads 1`` runs one request at a time per worker
(gthread, keep-alive kept), so an argon2 verify never shares its core with another request of
the same worker — measured 2026-12-07, it raised the ratio from 0.66 to 0.74, but the deployed
IdP keeps 4 threads: SMS-gateway and WeChat calls happen inside requests, and one slow gateway
would then hold a whole worker; ``--argon2 19456,2`` measures other hash parameters than the
app's default (here OWASP's 19 MiB × 2, the default until 2026-12-07); ``--profile 50`` then
profiles 50 sign-ins in this process through the Flask test client (cProfile) and prints the
top costs. Needs PostgreSQL
(``BENCH_DATABASE_URL``, an admin URL of the server, default
``postgresql://postgres@127.0.0.1:5432``; the database ``hongliu_bench`` is dropped and
created) and Redis (``BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/14``; its ``idp:``
keys are removed). Exit status: 0 PASS, 1 FAIL, 2 when PostgreSQL or Redis cannot be reached.
Traffic goes to 127.0.0.1 only (and to those two URLs); the server is stopped and the database
dropped at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import requests

# Only the standard library and requests at module level: the load clients are spawned
# processes that re-import this module, and they should stay light.
from _support import (
    CpuSnapshot,
    Unreachable,
    bench_database_url,
    children_of,
    clear_redis,
    database_backends,
    drop_database,
    free_port,
    machine_busy_seconds,
    percentile,
    recreate_database,
    redis_servers,
    stand_aside,
    start_gunicorn,
    stop_processes,
    stop_server,
    tail,
    used_between,
    wait_until_ready,
)

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = "hongliu_bench"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
REDIS_PREFIX = "idp:"
TARGET_RATIO = 0.8
#: Other processes using more than this share of the machine make a run untrustworthy.
NOISE_SHARE = 0.1
HTTP_TIMEOUT = 10.0
CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
SSO_COOKIE = "hongliu_sso"  # without the __Host- prefix: the benchmark runs over plain HTTP

Account = tuple[str, str]  # (account number, password)


# --- setup: database, Redis, migrations, users --------------------------------------------------


def app_environment(
    database_url: str, redis_url: str, outbox: Path, argon2: tuple[int, int] | None = None
) -> dict[str, str]:
    """The process environment for every app process: ours, without any inherited IDP_*.

    ``argon2`` (memory in KiB, passes) replaces the app's default hash parameters.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(
        {
            # development: production insists on Secure cookies, which plain HTTP cannot carry.
            "IDP_ENV": "development",
            "IDP_SECRET_KEY": secrets.token_hex(32),
            "IDP_DATA_KEY": secrets.token_hex(32),
            "IDP_DATABASE_URL": database_url,
            "IDP_REDIS_URL": redis_url,
            "IDP_OUTBOX_DIR": str(outbox),
            "IDP_LOG_FORMAT": "text",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if argon2 is not None:
        env["IDP_ARGON2_MEMORY_KIB"], env["IDP_ARGON2_TIME_COST"] = map(str, argon2)
    return env


def migrate(env: dict[str, str]) -> None:
    """``flask --app idp db upgrade`` against the benchmark database."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "idp", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr or result.stdout)
        raise SystemExit("login benchmark: `flask --app idp db upgrade` failed")


@dataclass
class Prepared:
    """What the setup produced: the accounts, one stored hash to verify, the argon2 params."""

    accounts: list[Account]
    sample_hash: str
    sample_password: str
    params: Any  # idp.auth.passwords.Argon2Params
    hasher: Any  # idp.auth.passwords.PasswordHasher
    app: Any  # the Flask app built here (for --profile)
    seconds: float


def create_users(env: dict[str, str], count: int) -> Prepared:
    """Build the app from ``env`` here and create ``count`` active users, committing once.

    Each has its own password and a verified security phone, so a correct password starts an
    SSO session at once (no "complete your information" step).
    """
    os.environ.clear()
    os.environ.update(env)
    from idp import create_app
    from idp.auth.passwords import hasher_from_config
    from idp.directory.models import User, utcnow
    from idp.directory.operations import create_user
    from idp.extensions import db

    started = time.perf_counter()
    app = create_app()
    accounts: list[Account] = []
    with app.app_context():
        for n in range(count):
            account, password = f"bench{n:05d}", f"bench-{secrets.token_hex(8)}"
            user = create_user(
                account, f"压测用户{n}", "student", password=password, phone=f"139{n:08d}"
            )
            user.phone_verified_at = utcnow()
            accounts.append((account, password))
        db.session.commit()
        sample = db.session.scalar(db.select(User).where(User.account == accounts[0][0]))
        assert sample is not None and sample.password_hash is not None
        sample_hash = sample.password_hash
        hasher = hasher_from_config(app.config)
        db.session.remove()
        db.engine.dispose()
    return Prepared(
        accounts=accounts,
        sample_hash=sample_hash,
        sample_password=accounts[0][1],
        params=hasher.params,
        hasher=hasher,
        app=app,
        seconds=time.perf_counter() - started,
    )


# --- bare argon2id ------------------------------------------------------------------------------


def verify_for(hasher: Any, stored: str, password: str, seconds: float) -> tuple[int, float]:
    """Verify the right password over and over for ``seconds``: (count, CPU-seconds used).

    Counted per CPU-second of this process, like the server's sign-ins: time another process
    took from this core does not count (cache and memory-bandwidth contention still does).
    """
    count = 0
    cpu_started = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if not hasher.verify(stored, password).ok:
            raise RuntimeError("the sample password did not verify")
        count += 1
    return count, time.process_time() - cpu_started


def _parallel_verifier(
    params: tuple[int, int, int],
    stored: str,
    password: str,
    start_at: float,
    seconds: float,
    out: Any,
) -> None:
    from idp.auth.passwords import Argon2Params, PasswordHasher

    hasher = PasswordHasher(Argon2Params(*params))
    while time.monotonic() < start_at:
        time.sleep(0.01)
    out.put(verify_for(hasher, stored, password, seconds))


def verify_in_parallel(prepared: Prepared, processes: int, seconds: float) -> tuple[int, float]:
    """``processes`` verifying at the same time: (verifies, CPU-seconds) summed over them."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    p = prepared.params
    start_at = time.monotonic() + 3.0
    procs = [
        ctx.Process(
            target=_parallel_verifier,
            args=(
                (p.memory_kib, p.time_cost, p.parallelism),
                prepared.sample_hash,
                prepared.sample_password,
                start_at,
                seconds,
                out,
            ),
            daemon=True,
        )
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    results: list[tuple[int, float]] = []
    try:
        results = [out.get(timeout=seconds + 60) for _ in procs]
    finally:
        stop_processes(procs, grace=5 if results else 0)
    return sum(count for count, _ in results), sum(cpu for _, cpu in results)


# --- load clients (separate processes) ----------------------------------------------------------


@dataclass
class Tally:
    """One client process's results inside the measured window."""

    successes: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # POST /login, seconds


def _sign_in_once(
    session: requests.Session, url: str, account: Account
) -> tuple[str | None, float]:
    """One sign-in: (failure reason or None, POST latency in seconds).

    Like a browser, the virtual user loads the form and signs in with it; the SSO cookie is
    dropped after every sign-in so that each POST starts a new session.
    """
    page = session.get(url, timeout=HTTP_TIMEOUT)
    match = CSRF_INPUT.search(page.text)
    if page.status_code != 200 or match is None:
        return f"GET /login answered {page.status_code} without a form", 0.0
    form = {"identifier": account[0], "password": account[1], "csrf_token": match.group(1)}
    started = time.monotonic()
    answer = session.post(url, data=form, allow_redirects=False, timeout=HTTP_TIMEOUT)
    latency = time.monotonic() - started
    location = urlsplit(answer.headers.get("Location", "")).path
    for cookie in list(session.cookies):
        if cookie.name == SSO_COOKIE:
            session.cookies.clear(cookie.domain, cookie.path, cookie.name)
    if answer.status_code != 302:
        return f"POST /login answered {answer.status_code}", latency
    if location != "/" or SSO_COOKIE not in answer.cookies:
        return f"POST /login redirected to {location!r} without a session", latency
    return None, latency


def _virtual_user(
    url: str,
    accounts: Sequence[Account],
    window: tuple[float, float],
    tally: Tally,
    lock: threading.Lock,
) -> None:
    measure_from, measure_until = window
    session = requests.Session()
    session.headers["User-Agent"] = "hongliu-login-benchmark/1"
    n = 0
    while time.monotonic() < measure_until:
        account = accounts[n % len(accounts)]
        n += 1
        try:
            reason, latency = _sign_in_once(session, url, account)
        except requests.RequestException as exc:
            reason, latency = type(exc).__name__, 0.0
        finished = time.monotonic()
        if not measure_from <= finished <= measure_until:
            continue
        with lock:
            if reason is None:
                tally.successes += 1
                tally.latencies.append(latency)
            else:
                tally.failures[reason] += 1
                if latency:
                    tally.latencies.append(latency)
    session.close()


def _client_process(
    url: str, users: list[list[Account]], start_at: float, window: tuple[float, float], out: Any
) -> None:
    """One load-generating process: a thread (and a requests.Session) per virtual user."""
    stand_aside()
    tally, lock = Tally(), threading.Lock()
    threads = [
        threading.Thread(target=_virtual_user, args=(url, accounts, window, tally, lock))
        for accounts in users
    ]
    while time.monotonic() < start_at:
        time.sleep(0.01)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put((tally.successes, dict(tally.failures), tally.latencies))


@dataclass
class LoadResult:
    """The whole load run: counts, latencies and where the CPU went."""

    successes: int
    failures: Counter[str]
    latencies: list[float]
    window: float
    server_cpu: float
    database_cpu: float
    redis_cpu: float
    client_cpu: float
    machine_busy: float
    machine_total: float
    worker_restarts: bool


def run_load(
    base_url: str,
    server: subprocess.Popen[bytes],
    accounts: list[Account],
    *,
    clients: int,
    virtual_users: int,
    warmup: float,
    seconds: float,
) -> LoadResult:
    """Drive sign-ins for ``warmup + seconds``; count and time only the last ``seconds``."""
    # Virtual user v signs in as accounts v, v + V, v + 2V, …: never two at once as one account.
    per_user = [accounts[v::virtual_users] for v in range(virtual_users)]
    per_client = [per_user[c::clients] for c in range(clients)]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.monotonic() + 3.0  # time for the spawned clients to import requests
    window = (start_at + warmup, start_at + warmup + seconds)
    results: list[tuple[int, dict[str, int], list[float]]] = []
    procs = [
        ctx.Process(
            target=_client_process,
            args=(base_url + "/login", users, start_at, window, out),
            daemon=True,
        )
        for users in per_client
        if users
    ]
    for proc in procs:
        proc.start()
    try:
        client_pids = [p.pid for p in procs if p.pid is not None]

        def watched() -> tuple[list[int], list[int], list[int], list[int]]:
            workers = children_of(server.pid)
            return [server.pid, *workers], database_backends(DB_NAME), redis_servers(), workers

        time.sleep(max(0.0, window[0] - time.monotonic()))
        server_pids, db_pids, redis_pids, workers_before = watched()
        before = CpuSnapshot.take([*server_pids, *db_pids, *redis_pids, *client_pids])
        time.sleep(max(0.0, window[1] - time.monotonic()))
        server_pids, db_pids, redis_pids, workers_after = watched()
        after = CpuSnapshot.take([*server_pids, *db_pids, *redis_pids, *client_pids])

        results = [out.get(timeout=HTTP_TIMEOUT * 3 + 30) for _ in procs]
    finally:
        # Interrupted (no results): stop the clients at once rather than let them run on.
        stop_processes(procs, grace=HTTP_TIMEOUT + 5 if results else 0)
    failures: Counter[str] = Counter()
    latencies: list[float] = []
    for _, failed, lat in results:
        failures.update(failed)
        latencies += lat
    return LoadResult(
        successes=sum(ok for ok, _, _ in results),
        failures=failures,
        latencies=latencies,
        window=window[1] - window[0],
        server_cpu=used_between(before, after, server_pids),
        database_cpu=used_between(before, after, db_pids),
        redis_cpu=used_between(before, after, redis_pids),
        client_cpu=used_between(before, after, client_pids),
        machine_busy=after.busy - before.busy,
        machine_total=after.total - before.total,
        worker_restarts=set(workers_before) != set(workers_after),
    )


def combine(slices: Sequence[LoadResult]) -> LoadResult:
    """Several load slices as one run: counts, latencies and CPU added up."""
    failures: Counter[str] = Counter()
    for one in slices:
        failures.update(one.failures)
    return LoadResult(
        successes=sum(one.successes for one in slices),
        failures=failures,
        latencies=[latency for one in slices for latency in one.latencies],
        window=sum(one.window for one in slices),
        server_cpu=sum(one.server_cpu for one in slices),
        database_cpu=sum(one.database_cpu for one in slices),
        redis_cpu=sum(one.redis_cpu for one in slices),
        client_cpu=sum(one.client_cpu for one in slices),
        machine_busy=sum(one.machine_busy for one in slices),
        machine_total=sum(one.machine_total for one in slices),
        worker_restarts=any(one.worker_restarts for one in slices),
    )


# --- where the time goes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Aftermath:
    """The CPU of one small request, warm and right after an argon2 verify (seconds)."""

    warm: float
    after_verify: float


def argon2_aftermath(prepared: Prepared, samples: int = 300) -> Aftermath:
    """What one argon2 verify costs the Python work that follows it.

    A verify sweeps ``memory_kib`` (7 MiB by default) through the core's caches ``time_cost``
    times, evicting the interpreter's working set; whatever runs next — the rest of the
    sign-in, the next request — refetches it from memory. Measured here with ``GET /healthz``
    through the Flask test client in this process (no database, no Redis): its median CPU after
    another request like it, and right after a verify. The server pays the difference on
    everything a sign-in does besides argon2, which is why its overhead is larger than an
    in-process profile with cheap hash parameters suggests.
    """
    client = prepared.app.test_client()

    def one() -> float:
        started = time.thread_time()
        if client.get("/healthz").status_code != 200:
            raise RuntimeError("GET /healthz failed in-process")
        return time.thread_time() - started

    for _ in range(50):
        one()
    warm = statistics.median(one() for _ in range(samples))
    after: list[float] = []
    for _ in range(samples):
        prepared.hasher.verify(prepared.sample_hash, prepared.sample_password)
        after.append(one())
    return Aftermath(warm, statistics.median(after))


# --- where the time goes (--profile) -----------------------------------------------------------

#: What the profile shows: the app, the libraries a sign-in leans on, not the WSGI plumbing.
PROFILE_FILTER = (
    r"(idp|shared)/|flask_wtf/|flask_babel/|wtforms/form|babel/(support|core)|redis/client.py"
    r".*execute_command|jinja2/environment.py.*render|orm/session.py.*commit|argon2_verify"
)


def profile_sign_ins(app: Any, accounts: Sequence[Account], count: int) -> None:
    """Sign in ``count`` times through the Flask test client in this process; print the costs."""
    import cProfile
    import pstats

    def once(account: Account) -> None:
        client = app.test_client()  # a new browser each time, as in the load
        page = client.get("/login")
        match = CSRF_INPUT.search(page.get_data(as_text=True))
        form = {"identifier": account[0], "password": account[1]}
        answer = client.post("/login", data={**form, "csrf_token": match and match.group(1)})
        if answer.status_code != 302 or answer.headers.get("Location") != "/":
            raise RuntimeError(f"profiled sign-in answered {answer.status_code}")

    sample = [accounts[n % len(accounts)] for n in range(count)]
    once(sample[0])
    started = time.process_time()
    for account in sample:
        once(account)
    cpu = (time.process_time() - started) / count
    profiler = cProfile.Profile(time.process_time)  # CPU, not waits on the database
    for account in sample:
        profiler.runcall(once, account)
    print(
        f"\n{count} sign-ins through the Flask test client in this process: {cpu * 1000:.1f} ms "
        "CPU each (GET + POST /login). Top costs under cProfile, which inflates Python code:"
    )
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(PROFILE_FILTER, 30)


# --- report -------------------------------------------------------------------------------------


def _line(label: str, value: str) -> None:
    print(f"  {label:<47} {value}")


def report(
    args: argparse.Namespace,
    prepared: Prepared,
    bare: float,
    every_core: float,
    load: LoadResult,
    cores: int,
    bare_noise: float,
    aftermath: Aftermath,
) -> bool:
    """Print the figures; True when the ratio meets the target."""
    p = prepared.params
    serving = min(args.workers, cores)
    rate = load.successes / load.window
    per_cpu_second = load.successes / load.server_cpu if load.server_cpu else 0.0
    ratio = per_cpu_second / every_core if every_core else 0.0
    ok = ratio >= TARGET_RATIO and not load.failures and load.successes > 0
    stack_cpu = load.server_cpu + load.database_cpu + load.redis_cpu
    others = load.machine_busy - stack_cpu - load.client_cpu
    print()
    print(
        f"argon2id m={p.memory_kib} KiB t={p.time_cost} p={p.parallelism}; {cores} cores; "
        f"gunicorn {args.workers} gthread workers × {args.threads} threads "
        "(deploy/gunicorn.conf.py); "
        f"{args.clients} client processes with "
        f"{args.concurrency} virtual users in all; {load.window:.0f} s measured in "
        f"{args.rounds} slices, each after {args.warmup:.0f} s of warm-up"
    )
    _line(
        "bare argon2id verify, 1 core, the others idle:",
        f"{bare:6.1f} verifies per CPU-s ({1000 / bare:.1f} ms each)",
    )
    _line(
        f"bare, all {cores} cores verifying at once:",
        f"{every_core:6.1f} verifies per CPU-s ({1000 / every_core:.1f} ms each)",
    )
    _line(
        "sign-ins (302 to / with an SSO session):",
        f"{rate:6.1f} /s in all ({load.successes} in {load.window:.1f} s)",
    )
    _line(
        f"per core (÷ min(workers, nproc) = {serving}):",
        f"{rate / serving:6.1f} /s/core (the load clients ran on these cores too)",
    )
    _line(
        "server CPU (gunicorn master + workers):",
        f"{load.server_cpu:6.1f} CPU-s of the {serving * load.window:.0f} its cores had",
    )
    if load.successes:
        _line(
            "server CPU per sign-in (GET + POST /login):",
            f"{load.server_cpu / load.successes * 1000:6.1f} ms, of which argon2 "
            f"≈ {1000 / every_core:.1f} ms",
        )
    _line("sign-ins per server CPU-second:", f"{per_cpu_second:6.1f}")
    _line(
        "POST /login latency:",
        f"p50 {percentile_ms(load, 50)}, p99 {percentile_ms(load, 99)} (n={len(load.latencies)})",
    )
    _line("errors:", f"{sum(load.failures.values()):4d}")
    for reason, count in load.failures.most_common(5):
        print(f"    {count} × {reason}")
    print(
        f"  also in the window: PostgreSQL backends {load.database_cpu:.1f} CPU-s, Redis "
        f"{load.redis_cpu:.1f} (whole server), load clients {load.client_cpu:.1f}, anything "
        f"else {max(others, 0.0):.1f}; machine busy {load.machine_busy:.1f} of "
        f"{load.machine_total:.1f} CPU-s"
    )
    if stack_cpu and every_core:
        print(
            f"  counting PostgreSQL and Redis too: {load.successes / stack_cpu:.1f} sign-ins "
            f"per CPU-second ({load.successes / stack_cpu / every_core:.2f} of bare)"
        )
    noisy_bare = bare_noise > NOISE_SHARE * cores * args.verify_seconds
    if others > NOISE_SHARE * load.machine_total or noisy_bare:
        print(
            f"  warning: other processes were busy during the run ({max(others, 0.0):.1f} CPU-s "
            f"under load, {max(bare_noise, 0.0):.1f} during the bare verifies): the figures are "
            "disturbed, run again on a quiet machine"
        )
    if load.worker_restarts:
        print("  note: gunicorn workers changed during the window; the CPU figure undercounts")
    print(
        f"  one small request (GET /healthz, in-process): {aftermath.warm * 1000:.2f} ms CPU warm, "
        f"{aftermath.after_verify * 1000:.2f} ms right after an argon2 verify (it evicts the "
        "caches: all the Python of a sign-in runs cold)"
    )
    if bare:
        print(
            f"  against the idle-core rate instead: {per_cpu_second / bare:.2f} "
            "(the server's cores were not idle: not the target's measure)"
        )
    print(
        f"ratio = {per_cpu_second:.1f} sign-ins per server CPU-s ÷ {every_core:.1f} bare verifies "
        f"per CPU-s with every core verifying = {ratio:.2f} (target ≥ {TARGET_RATIO}) → "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return ok


def percentile_ms(load: LoadResult, q: float) -> str:
    """A latency percentile in milliseconds, or a dash without samples."""
    return f"{percentile(load.latencies, q) * 1000:.0f} ms" if load.latencies else "-"


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; defaults fit the machine it runs on."""
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured load (default 20)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured load first")
    parser.add_argument("--workers", type=int, default=cores, help="gunicorn workers (nproc)")
    parser.add_argument("--clients", type=int, default=cores, help="client processes (nproc)")
    parser.add_argument(
        "--threads", type=int, default=4, help="threads per gunicorn worker (4, as deployed)"
    )
    parser.add_argument(
        "--concurrency", type=int, help="virtual users in all (default 2 × workers)"
    )
    parser.add_argument("--users", type=int, default=200, help="benchmark accounts (200)")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="afterwards, profile N sign-ins in-process (Flask test client) and print top costs",
    )
    parser.add_argument(
        "--argon2",
        type=_argon2_params,
        metavar="KIB,PASSES",
        help="other argon2id parameters than the app's default, e.g. 19456,2 (OWASP's 19 MiB × 2)",
    )
    parser.add_argument(
        "--verify-seconds", type=float, default=4.0, help="each bare argon2 reading (4)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="load slices, each between two bare readings (4); --seconds is split among them",
    )
    args = parser.parse_args(argv)
    args.concurrency = args.concurrency or 2 * args.workers
    args.clients = max(1, min(args.clients, args.concurrency))
    if min(args.seconds, args.verify_seconds) <= 0 or min(args.workers, args.users) < 1:
        parser.error("durations, workers and users must be positive")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def _argon2_params(text: str) -> tuple[int, int]:
    try:
        memory_kib, passes = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected KIB,PASSES, e.g. 19456,2") from None
    if memory_kib < 1024 or passes < 1:
        raise argparse.ArgumentTypeError("at least 1024 KiB and 1 pass")
    return memory_kib, passes


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: cleanup still runs


def main(argv: Sequence[str] | None = None) -> int:
    """Set up, measure, report, clean up."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    cores = os.cpu_count() or 1
    admin_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        clear_redis(
            redis_url, REDIS_PREFIX
        )  # Redis first: when it is down, nothing has been created yet
        recreate_database(admin_url, DB_NAME)
    except Unreachable as exc:
        print(f"login benchmark: {exc}")
        return 2
    saved_environ = dict(os.environ)
    ok = False
    server: subprocess.Popen[bytes] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="hongliu-login-bench-") as tmp:
            env = app_environment(
                bench_database_url(admin_url, DB_NAME),
                redis_url,
                Path(tmp) / "outbox",
                args.argon2,
            )
            load_before = os.getloadavg()[0]
            migrate(env)
            prepared = create_users(env, args.users)
            print(
                f"database {DB_NAME} migrated, {args.users} users created in "
                f"{prepared.seconds:.1f} s (load average before: {load_before:.2f})"
            )
            busy_before = machine_busy_seconds()[0]
            count, cpu = verify_for(
                prepared.hasher,
                prepared.sample_hash,
                prepared.sample_password,
                args.verify_seconds,
            )
            bare_noise = machine_busy_seconds()[0] - busy_before - cpu  # what others used
            port, log = free_port(), Path(tmp) / "gunicorn.log"
            base_url = f"http://127.0.0.1:{port}"
            server = start_gunicorn(env, args.workers, port, log, threads=args.threads)
            wait_until_ready(base_url + "/healthz", server, log, "login benchmark: gunicorn")
            # A virtual machine's CPU speed drifts by 10 % and more within a minute, so the load
            # is measured in slices, each between two readings of the every-core verify rate,
            # and both are pooled: the baseline sees the same drift as the load.
            every = [verify_in_parallel(prepared, cores, args.verify_seconds)]
            slices: list[LoadResult] = []
            for _ in range(args.rounds):
                slices.append(
                    run_load(
                        base_url,
                        server,
                        prepared.accounts,
                        clients=args.clients,
                        virtual_users=args.concurrency,
                        warmup=args.warmup,
                        seconds=args.seconds / args.rounds,
                    )
                )
                every.append(verify_in_parallel(prepared, cores, args.verify_seconds))
            if server.poll() is not None:
                print(f"gunicorn exited during the run:\n{tail(log)}")
            count_after, cpu_after = verify_for(
                prepared.hasher,
                prepared.sample_hash,
                prepared.sample_password,
                args.verify_seconds,
            )
            rates = [n / c for n, c in every]
            print(
                "bare argon2id verifies per CPU-second with every core verifying, between the "
                f"{args.rounds} load slices: {' / '.join(f'{r:.1f}' for r in rates)}; on one "
                f"core, before / after: {count / cpu:.1f} / {count_after / cpu_after:.1f}"
            )
            bare = (count + count_after) / (cpu + cpu_after)
            every_core = sum(n for n, _ in every) / sum(c for _, c in every)
            load = combine(slices)
            if args.rounds > 1:
                print(
                    "ratio of each slice against the verify rates either side of it: "
                    + " / ".join(
                        f"{one.successes / one.server_cpu / ((a + b) / 2):.2f}"
                        for one, a, b in zip(slices, rates, rates[1:], strict=False)
                        if one.server_cpu
                    )
                )
            stop_server(server)
            server = None
            aftermath = argon2_aftermath(prepared)
            ok = report(args, prepared, bare, every_core, load, cores, bare_noise, aftermath)
            if load.failures:
                print(f"last lines of the gunicorn log:\n{tail(log, 10)}")
            if args.profile > 0:
                profile_sign_ins(prepared.app, prepared.accounts, args.profile)
    finally:
        if server is not None:
            stop_server(server)
        os.environ.clear()
        os.environ.update(saved_environ)
        try:
            drop_database(admin_url, DB_NAME)
            clear_redis(redis_url, REDIS_PREFIX)
        except Unreachable as exc:
            print(f"login benchmark: cleanup: {exc}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
