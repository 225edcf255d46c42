"""CAS ticket validations and OIDC refresh grants per server CPU-second, against a Node OP.

What it measures
    The IdP as deployed (gunicorn with deploy/gunicorn.conf.py: gthread workers, 4 threads,
    keep-alive, as the systemd unit runs it; worker recycling off for the run; PostgreSQL,
    Redis) answering two protocol calls that relying parties make all day, from real HTTP
    clients (each a keep-alive connection, as nginx's upstream pool) in separate processes:

    * CAS ``GET /cas/p3/serviceValidate?service=…&ticket=ST-…`` that must answer
      ``cas:authenticationSuccess`` for the benchmark account. Service tickets are single-use,
      so a pool of them is minted first, untimed, the way a browser gets them: a few browsers
      sign in once (``GET``/``POST /login``), then ``GET /cas/login?service=…`` over and over,
      each answer a redirect carrying a fresh ``ticket=``.
    * OIDC ``POST /oauth2/token`` with ``grant_type=refresh_token`` and client_secret_basic.
      Every virtual client first gets its own refresh token through the code flow with S256
      PKCE (untimed), then refreshes in a loop; refresh tokens rotate, so each request presents
      the token the previous answer returned, and one failure ends that client's chain.
    * The same refresh loop, with the same client processes, against panva's ``oidc-provider``
      (npm, an OpenID-certified OP) started by this run from ``benchmarks/node-op/op.mjs``:
      one Node process, in-memory storage, rotation on, the same token lifetimes; its
      authorization step is finished without any page (see op.mjs). Node runs JavaScript on
      one thread, so its rate per CPU-second is its rate per core.

How to read it
    * ``per server CPU-second`` — successes divided by the CPU time (utime + stime from /proc)
      the server used over the measured window: gunicorn master + workers, or the node
      process. The fair "per core" figure, and the one the targets apply to. ``/s`` is the
      plain rate; on a small box the load clients share the cores, so it understates capacity.
      The clients run under SCHED_BATCH, so that their wake-ups do not preempt the servers.
    * CAS target: at least 500 validations per server CPU-second.
    * Refresh target: ratio = Hongliu refreshes per server CPU-second ÷ Node refreshes per
      CPU-second of the node process, at least 0.5. Hongliu's refresh answer carries a new
      access and refresh token and no ID token; oidc-provider by default also signs a fresh ID
      token (RS256) when the grant has ``openid``. So Node is measured twice: with
      ``scope=profile`` on each refresh (no ID token: the same work as Hongliu), which is the
      ratio the target is judged on, and as configured out of the box, shown for reference.
    * Each server also pays its own storage: Hongliu PostgreSQL (a row per issued token) and
      Redis; Node keeps everything in its own memory. PostgreSQL and Redis CPU is printed too.
    * ``p50 / p99`` — latency as the client saw it (queueing included).

Run: ``.venv/bin/python benchmarks/protocols.py [--seconds 20] [--workers N] [--clients N]``
(also by ``make bench``); ``--profile 200`` then profiles 200 validations and 200 refreshes
in this process through the Flask test client (cProfile) and prints the top costs. Needs
PostgreSQL (``BENCH_DATABASE_URL``, an admin URL of the server, default
``postgresql://postgres@127.0.0.1:5432``; the database ``hongliu_bench_protocols`` is dropped
and created), Redis (``BENCH_REDIS_URL``, default ``redis://127.0.0.1:6379/14``; the app's keys
go under the prefix ``bench-protocols:``, removed before and after) and Node with npm
(``npm ci`` is run in benchmarks/node-op when its node_modules is missing). Exit status:
0 PASS, 1 FAIL, 2 when something it needs cannot be reached or prepared. Traffic goes to
127.0.0.1 only (and to those two URLs); the servers are stopped and the database dropped at
the end.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import multiprocessing as mp
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

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
NODE_DIR = ROOT / "benchmarks" / "node-op"
DB_NAME = "hongliu_bench_protocols"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
STORE_PREFIX = "bench-protocols:"
TARGET_CAS = 500.0  # validations per server CPU-second
TARGET_RATIO = 0.5  # Hongliu refreshes per CPU-second ÷ Node's
#: Tickets minted per serving core and second of load: above any rate seen here, so the pool
#: lasts the whole window (a run that empties it says so).
POOL_RATE = 450
#: Other processes using more than this share of the machine make a run untrustworthy.
NOISE_SHARE = 0.1
HTTP_TIMEOUT = 10.0
CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
# Never contacted: the redirects that carry tickets and codes are read, not followed.
SERVICE_URL = "http://127.0.0.1:9/cas-bench/"
REDIRECT_URI = "http://127.0.0.1:9/callback"
ACCOUNT = "bench00000"
SCOPE = "openid profile"
USER_AGENT = "hongliu-protocols-benchmark/1"
#: The two ways oidc-provider is measured: (what, extra form fields of each refresh). Hongliu
#: answers a refresh without an ID token; oidc-provider signs one whenever the refreshed
#: scope has openid, unless the request narrows the scope. The first is the like-for-like one.
NODE_VARIANTS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("scope=profile: no ID token, the same work as Hongliu", (("scope", "profile"),)),
    ("as configured: a new RS256 ID token on every refresh", ()),
)


# --- setup: database, Redis, migrations, the account, registrations -----------------------------


def app_environment(database_url: str, redis_url: str, outbox: Path, issuer: str) -> dict[str, str]:
    """The process environment for every app process: ours, without any inherited IDP_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(
        {
            # development: production insists on Secure cookies, which plain HTTP cannot carry.
            "IDP_ENV": "development",
            "IDP_SECRET_KEY": secrets.token_hex(32),
            "IDP_DATA_KEY": secrets.token_hex(32),
            "IDP_DATABASE_URL": database_url,
            "IDP_REDIS_URL": redis_url,
            "IDP_STORE_PREFIX": STORE_PREFIX,
            "IDP_ISSUER": issuer,
            "IDP_OUTBOX_DIR": str(outbox),
            "IDP_LOG_FORMAT": "text",
            # Minting the pool takes a while; how long a ticket may live costs nothing at use.
            "IDP_CAS_TICKET_TTL": "3600",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def flask_cli(env: dict[str, str], *arguments: str, what: str) -> str:
    """``flask --app idp …`` against the benchmark database; its standard output."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "idp", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr or result.stdout)
        raise SystemExit(f"protocols benchmark: `flask --app idp {what}` failed")
    return result.stdout


def create_account(env: dict[str, str]) -> tuple[Any, str]:
    """Build the app from ``env`` here and create the benchmark account; (app, password).

    The account has a verified security phone, so a correct password starts an SSO session
    at once (no "complete your information" step).
    """
    os.environ.clear()
    os.environ.update(env)
    from idp import create_app
    from idp.directory.models import utcnow
    from idp.directory.operations import create_user
    from idp.extensions import db

    app = create_app()
    password = f"bench-{secrets.token_hex(8)}"
    with app.app_context():
        user = create_user(ACCOUNT, "压测用户", "student", password=password, phone="13900000000")
        user.phone_verified_at = utcnow()
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return app, password


@dataclass(frozen=True)
class Registrations:
    """The CAS service and the OIDC client, as the command line registered them."""

    cas_service: str
    client_id: str
    client_secret: str


def register_clients(env: dict[str, str]) -> Registrations:
    """``clients add-cas`` and ``clients add-oidc`` (first party: no consent page)."""
    pattern = "^" + re.escape(SERVICE_URL) + ".*$"
    flask_cli(
        env,
        *("clients", "add-cas", "压测 CAS 应用", "--service", pattern, "--json"),
        *("--attribute", "name", "--attribute", "account", "--attribute", "kind"),
        what="clients add-cas",
    )
    out = flask_cli(
        env,
        *("clients", "add-oidc", "压测 OIDC 应用", "--first-party", "--json"),
        *("--redirect-uri", REDIRECT_URI, "--auth-method", "client_secret_basic"),
        *("--grant-type", "authorization_code", "--grant-type", "refresh_token"),
        what="clients add-oidc",
    )
    client = json.loads(out.strip().splitlines()[-1])
    return Registrations(SERVICE_URL, client["client_id"], client["client_secret"])


# --- the servers --------------------------------------------------------------------------------


def node_ready() -> bool:
    """True when benchmarks/node-op has its dependencies installed."""
    return (NODE_DIR / "node_modules" / "oidc-provider" / "package.json").is_file()


def prepare_node() -> None:
    """Make sure ``node`` exists and the reference OP's dependencies are installed."""
    if shutil.which("node") is None:
        raise Unreachable("node is not installed: the Node reference OP cannot run")
    if node_ready():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise Unreachable("npm is not installed: cannot install benchmarks/node-op")
    print(
        "benchmarks/node-op/node_modules is missing: running `npm ci --prefix benchmarks/node-op`"
    )
    result = subprocess.run(
        [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0 or not node_ready():
        reason = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise Unreachable("`npm ci` failed in benchmarks/node-op:\n" + "\n".join(reason))


def start_node(port: int, client: Registrations, log: Path) -> subprocess.Popen[bytes]:
    """``node op.mjs`` on ``port``, with the same client id, secret and redirect URI."""
    env = {
        **os.environ,
        "NODE_ENV": "production",
        "NODE_OP_CLIENT_ID": client.client_id,
        "NODE_OP_CLIENT_SECRET": client.client_secret,
        "NODE_OP_REDIRECT_URI": REDIRECT_URI,
        "NODE_OP_ACCOUNT": ACCOUNT,
    }
    with log.open("wb") as handle:
        return subprocess.Popen(
            ["node", "op.mjs", "--port", str(port)],
            cwd=NODE_DIR,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


# --- CPU accounting from /proc ------------------------------------------------------------------


# --- getting tickets and refresh tokens like a browser (setup, untimed) -------------------------


def browser() -> requests.Session:
    """A fresh cookie jar, as a new browser."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def sign_in(base_url: str, password: str) -> requests.Session:
    """A browser signed in to the IdP as the benchmark account (it holds the SSO cookie)."""
    session = browser()
    page = session.get(base_url + "/login", timeout=HTTP_TIMEOUT)
    match = CSRF_INPUT.search(page.text)
    if page.status_code != 200 or match is None:
        raise RuntimeError(f"GET /login answered {page.status_code} without a form")
    form = {"identifier": ACCOUNT, "password": password, "csrf_token": match.group(1)}
    answer = session.post(
        base_url + "/login", data=form, allow_redirects=False, timeout=HTTP_TIMEOUT
    )
    if answer.status_code != 302 or urlsplit(answer.headers.get("Location", "")).path != "/":
        raise RuntimeError(f"POST /login answered {answer.status_code}: no SSO session")
    return session


def _mint(session: requests.Session, base_url: str, count: int) -> list[str]:
    """``count`` service tickets from /cas/login with this browser's SSO session."""
    tickets: list[str] = []
    url = base_url + "/cas/login?" + urlencode({"service": SERVICE_URL})
    for _ in range(count):
        answer = session.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT)
        ticket = parse_qs(urlsplit(answer.headers.get("Location", "")).query).get("ticket")
        if answer.status_code != 303 or not ticket:
            raise RuntimeError(f"/cas/login answered {answer.status_code} without a ticket")
        tickets.append(ticket[0])
    return tickets


def mint_tickets(base_url: str, password: str, count: int, browsers: int) -> list[str]:
    """A pool of ``count`` STs for SERVICE_URL, minted by ``browsers`` signed-in browsers."""
    sessions = [sign_in(base_url, password) for _ in range(browsers)]
    shares = [count // browsers + (1 if n < count % browsers else 0) for n in range(browsers)]
    with ThreadPoolExecutor(max_workers=browsers) as pool:
        batches = list(pool.map(lambda s, n: _mint(s, base_url, n), sessions, shares))
    for session in sessions:
        session.close()
    return [ticket for batch in batches for ticket in batch]


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class TokenEndpoint:
    """Where and as whom the load clients refresh, and what they add to each request."""

    url: str
    client_id: str
    client_secret: str
    extra: tuple[tuple[str, str], ...] = ()


def discover(base_url: str) -> dict[str, Any]:
    """The OP's discovery document."""
    answer = requests.get(base_url + "/.well-known/openid-configuration", timeout=HTTP_TIMEOUT)
    answer.raise_for_status()
    document: dict[str, Any] = answer.json()
    return document


def refresh_token_by_code_flow(
    session: requests.Session, document: dict[str, Any], client: Registrations
) -> str:
    """Authorize with S256 PKCE in ``session``, following redirects until the code comes
    back to REDIRECT_URI, then exchange it; the refresh token of that first token response."""
    verifier, challenge = pkce_pair()
    query = {
        "client_id": client.client_id,
        "response_type": "code",
        "scope": SCOPE,
        "redirect_uri": REDIRECT_URI,
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    url = document["authorization_endpoint"] + "?" + urlencode(query)
    for _ in range(10):
        answer = session.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT)
        if answer.status_code not in (302, 303):
            raise RuntimeError(f"authorization answered {answer.status_code}: {answer.text[:200]}")
        url = urljoin(url, answer.headers["Location"])
        if url.startswith(REDIRECT_URI):
            break
    else:
        raise RuntimeError("the authorization request never came back to the client")
    code = parse_qs(urlsplit(url).query).get("code")
    if not code:
        raise RuntimeError(f"authorization came back without a code: {url}")
    answer = session.post(
        document["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code[0],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(client.client_id, client.client_secret),
        timeout=HTTP_TIMEOUT,
    )
    token = answer.json() if answer.status_code == 200 else {}
    if "refresh_token" not in token:
        raise RuntimeError(f"code exchange answered {answer.status_code}: {answer.text[:200]}")
    return str(token["refresh_token"])


def refresh_tokens(
    count: int, document: dict[str, Any], client: Registrations, open_browser: Callable[[], Any]
) -> list[str]:
    """One refresh token per virtual client, each from its own browser (its own grant)."""
    tokens = []
    for _ in range(count):
        with open_browser() as session:
            tokens.append(refresh_token_by_code_flow(session, document, client))
    return tokens


# --- load clients (separate processes) ----------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What the load clients do: validate tickets at ``url`` or refresh at ``endpoint``."""

    kind: str  # "cas" or "refresh"
    url: str = ""
    endpoint: TokenEndpoint | None = None


@dataclass
class Tally:
    """One client process's results inside the measured window."""

    successes: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds
    ran_out: int = 0  # CAS virtual users whose tickets ran out before the window ended


def _validate_once(session: requests.Session, url: str, ticket: str) -> str | None:
    """One p3/serviceValidate; the failure reason or None."""
    answer = session.get(
        url, params={"service": SERVICE_URL, "ticket": ticket}, timeout=HTTP_TIMEOUT
    )
    if answer.status_code != 200:
        return f"p3/serviceValidate answered {answer.status_code}"
    if "<cas:authenticationSuccess>" not in answer.text:
        code = re.search(r'code="([A-Z_]+)"', answer.text)
        return f"p3/serviceValidate failed: {code.group(1) if code else answer.text[:80]}"
    if f"<cas:user>{ACCOUNT}</cas:user>" not in answer.text:
        return "p3/serviceValidate named another user"
    return None


def _refresh_once(
    session: requests.Session, endpoint: TokenEndpoint, token: str
) -> tuple[str | None, str]:
    """One refresh grant: (failure reason or None, the refresh token to present next)."""
    answer = session.post(
        endpoint.url,
        data={"grant_type": "refresh_token", "refresh_token": token, **dict(endpoint.extra)},
        auth=(endpoint.client_id, endpoint.client_secret),
        timeout=HTTP_TIMEOUT,
    )
    body = answer.json() if answer.status_code == 200 else {}
    new = body.get("refresh_token")
    if answer.status_code != 200:
        return f"refresh answered {answer.status_code}: {answer.text[:80]}", token
    if not new or new == token or not body.get("access_token"):
        return "refresh answered without a new refresh and access token", token
    return None, str(new)


def _virtual_user(
    job: Job, payload: Any, window: tuple[float, float], tally: Tally, lock: threading.Lock
) -> None:
    """Loop one protocol call until the window ends; count what finishes inside it.

    CAS: ``payload`` is this user's tickets, each used once. Refresh: ``payload`` is the first
    refresh token; a failed refresh breaks the rotation chain and ends this user.
    """
    measure_from, measure_until = window
    session = browser()
    tickets: list[str] = list(payload) if job.kind == "cas" else []
    token: str = payload if job.kind == "refresh" else ""
    while time.monotonic() < measure_until:
        if job.kind == "cas" and not tickets:
            with lock:
                tally.ran_out += 1
            break
        started = time.monotonic()
        try:
            if job.kind == "cas":
                reason = _validate_once(session, job.url, tickets.pop())
            else:
                assert job.endpoint is not None
                reason, token = _refresh_once(session, job.endpoint, token)
        except (requests.RequestException, ValueError) as exc:
            reason = type(exc).__name__
        finished = time.monotonic()
        if measure_from <= finished <= measure_until:
            with lock:
                tally.latencies.append(finished - started)
                if reason is None:
                    tally.successes += 1
                else:
                    tally.failures[reason] += 1
        if reason is not None and job.kind == "refresh":
            break  # the chain is broken: the next token is unknown or revoked
    session.close()


def _client_process(
    job: Job, payloads: list[Any], start_at: float, window: tuple[float, float], out: Any
) -> None:
    """One load-generating process: a thread (and a requests.Session) per virtual user."""
    stand_aside()
    tally, lock = Tally(), threading.Lock()
    threads = [
        threading.Thread(target=_virtual_user, args=(job, payload, window, tally, lock))
        for payload in payloads
    ]
    while time.monotonic() < start_at:
        time.sleep(0.01)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put((tally.successes, dict(tally.failures), tally.latencies, tally.ran_out))


@dataclass
class LoadResult:
    """One load run: counts, latencies and where the CPU went."""

    label: str
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
    server_changed: bool
    ran_out: int

    @property
    def rate(self) -> float:
        """Successes per wall-clock second."""
        return self.successes / self.window

    @property
    def per_cpu_second(self) -> float:
        """Successes per CPU-second of the server."""
        return self.successes / self.server_cpu if self.server_cpu > 0 else 0.0


def run_load(
    label: str,
    job: Job,
    server_pid: int,
    payloads: list[Any],
    *,
    clients: int,
    warmup: float,
    seconds: float,
) -> LoadResult:
    """Drive ``job`` for ``warmup + seconds`` (a virtual user per payload); count and time
    only the last ``seconds``; the server is ``server_pid`` and its children."""
    per_client = [payloads[c::clients] for c in range(clients)]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.monotonic() + 3.0  # time for the spawned clients to import requests
    window = (start_at + warmup, start_at + warmup + seconds)
    results: list[tuple[int, dict[str, int], list[float], int]] = []
    procs = [
        ctx.Process(target=_client_process, args=(job, share, start_at, window, out), daemon=True)
        for share in per_client
        if share
    ]
    for proc in procs:
        proc.start()
    try:
        client_pids = [p.pid for p in procs if p.pid is not None]

        def watched() -> tuple[list[int], list[int], list[int]]:
            return (
                [server_pid, *children_of(server_pid)],
                database_backends(DB_NAME),
                redis_servers(),
            )

        time.sleep(max(0.0, window[0] - time.monotonic()))
        server_before, db_pids, redis_pids = watched()
        before = CpuSnapshot.take([*server_before, *db_pids, *redis_pids, *client_pids])
        time.sleep(max(0.0, window[1] - time.monotonic()))
        server_pids, db_pids, redis_pids = watched()
        after = CpuSnapshot.take([*server_pids, *db_pids, *redis_pids, *client_pids])
        results = [out.get(timeout=HTTP_TIMEOUT * 3 + 30) for _ in procs]
    finally:
        # Interrupted (no results): stop the clients at once rather than let them run on.
        stop_processes(procs, grace=HTTP_TIMEOUT + 5 if results else 0)
    failures: Counter[str] = Counter()
    latencies: list[float] = []
    for _, failed, lat, _ in results:
        failures.update(failed)
        latencies += lat
    return LoadResult(
        label=label,
        successes=sum(r[0] for r in results),
        failures=failures,
        latencies=latencies,
        window=window[1] - window[0],
        server_cpu=used_between(before, after, server_pids),
        database_cpu=used_between(before, after, db_pids),
        redis_cpu=used_between(before, after, redis_pids),
        client_cpu=used_between(before, after, client_pids),
        machine_busy=after.busy - before.busy,
        machine_total=after.total - before.total,
        server_changed=set(server_before) != set(server_pids),
        ran_out=sum(r[3] for r in results),
    )


# --- where the time goes (--profile) -----------------------------------------------------------

#: What the profile shows: the app and the libraries a request leans on, not WSGI plumbing.
PROFILE_FILTER = (
    r"(idp|shared)/|authlib/|flask_babel/|redis/client.py.*execute_command|"
    r"orm/session.py.*(commit|get|scalar|execute)|engine/base.py.*_execute_context|"
    r"jinja2/environment.py.*render|xml/etree"
)


def _test_browser(app: Any, password: str) -> Any:
    client = app.test_client()
    page = client.get("/login")
    match = CSRF_INPUT.search(page.get_data(as_text=True))
    form = {"identifier": ACCOUNT, "password": password, "csrf_token": match and match.group(1)}
    answer = client.post("/login", data=form)
    if answer.status_code != 302:
        raise RuntimeError(f"profiled sign-in answered {answer.status_code}")
    return client


def _package(filename: str) -> str:
    """Who owns the code at ``filename``: an idp/shared module, a library, the stdlib, or C."""
    if filename == "~":
        return "C built-ins (sockets, drivers, hashing…)"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if filename.startswith(str(ROOT) + "/"):
        parts = Path(filename).relative_to(ROOT).parts
        return "/".join(parts[:2]).removesuffix(".py")
    return "standard library"


def _print_profile(title: str, run: Callable[[], None], count: int) -> None:
    """Time ``run`` (``count`` requests), then profile it: own time by owner, then the
    cumulative top of the app's and the main libraries' functions."""
    import cProfile
    import pstats

    started = time.process_time()
    run()
    cpu = (time.process_time() - started) / count
    print(f"\n{title}: {cpu * 1000:.2f} ms CPU each without the profiler, in this process")
    profiler = cProfile.Profile(time.process_time)  # CPU, not waits on the database
    profiler.runcall(run)
    stats = pstats.Stats(profiler, stream=sys.stdout)
    owners: Counter[str] = Counter()
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, _, own, _, _) in raw.items():
        owners[_package(filename)] += own
    total = sum(owners.values()) or 1.0
    print("Own time by owner under cProfile (it inflates Python code against C):")
    for owner, own in owners.most_common(10):
        print(f"  {own / total:6.1%}  {owner}")
    print("Top costs (cumulative):")
    stats.sort_stats("cumulative").print_stats(PROFILE_FILTER, 25)


def profile_requests(app: Any, password: str, client: Registrations, count: int) -> None:
    """Validate ``count`` STs and make ``count`` refreshes through the Flask test client in
    this process under cProfile (tickets and tokens obtained first, outside the profile)."""
    browser_ = _test_browser(app, password)
    query = urlencode({"service": SERVICE_URL})

    def mint() -> str:
        answer = browser_.get("/cas/login?" + query)
        return str(parse_qs(urlsplit(answer.headers["Location"]).query)["ticket"][0])

    pools = [[mint() for _ in range(count)] for _ in range(2)]  # one timed run, one profiled

    def validate_all() -> None:
        tickets = pools.pop()
        for ticket in tickets:
            answer = app.test_client().get(
                "/cas/p3/serviceValidate", query_string={"service": SERVICE_URL, "ticket": ticket}
            )
            if b"<cas:authenticationSuccess>" not in answer.data:
                raise RuntimeError("profiled validation failed: " + answer.get_data(as_text=True))

    _print_profile(f"{count} p3/serviceValidate", validate_all, count)

    verifier, challenge = pkce_pair()
    answer = browser_.get(
        "/oauth2/authorize",
        query_string={
            "client_id": client.client_id,
            "response_type": "code",
            "scope": SCOPE,
            "redirect_uri": REDIRECT_URI,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    basic = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}"}
    first = app.test_client().post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        headers=headers,
    )
    chain = [str(first.get_json()["refresh_token"])]

    def refresh_all() -> None:
        for _ in range(count):
            answer = app.test_client().post(
                "/oauth2/token",
                data={"grant_type": "refresh_token", "refresh_token": chain[-1]},
                headers=headers,
            )
            if answer.status_code != 200:
                raise RuntimeError("profiled refresh failed: " + answer.get_data(as_text=True))
            chain.append(str(answer.get_json()["refresh_token"]))

    _print_profile(f"{count} refresh grants", refresh_all, count)


# --- report -------------------------------------------------------------------------------------


def _ms(load: LoadResult, q: float) -> str:
    return f"{percentile(load.latencies, q) * 1000:.1f} ms" if load.latencies else "-"


def _line(label: str, value: str) -> None:
    print(f"  {label:<40} {value}")


def describe(load: LoadResult, unit: str, server: str, stack: bool) -> None:
    """Print one run's figures."""
    print(f"{load.label}")
    _line(f"{unit}:", f"{load.rate:7.1f} /s ({load.successes} in {load.window:.1f} s)")
    _line(f"server CPU ({server}):", f"{load.server_cpu:7.2f} CPU-s")
    _line(f"{unit} per server CPU-second:", f"{load.per_cpu_second:7.1f}")
    if load.successes:
        _line("server CPU per request:", f"{load.server_cpu / load.successes * 1000:7.2f} ms")
    _line("latency:", f"p50 {_ms(load, 50)}, p99 {_ms(load, 99)} (n={len(load.latencies)})")
    _line("errors:", f"{sum(load.failures.values()):5d}")
    for reason, count in load.failures.most_common(5):
        print(f"    {count} × {reason}")
    others = load.machine_busy - load.server_cpu - load.client_cpu
    extra = ""
    if stack:
        others -= load.database_cpu + load.redis_cpu
        extra = f"PostgreSQL backends {load.database_cpu:.2f} CPU-s, Redis {load.redis_cpu:.2f}, "
        stack_cpu = load.server_cpu + load.database_cpu + load.redis_cpu
        if stack_cpu:
            _line("counting PostgreSQL and Redis too:", f"{load.successes / stack_cpu:7.1f} /CPU-s")
    print(
        f"  also in the window: {extra}load clients {load.client_cpu:.2f}, anything else "
        f"{max(others, 0.0):.2f}; machine busy {load.machine_busy:.1f} of "
        f"{load.machine_total:.1f} CPU-s"
    )
    if others > NOISE_SHARE * load.machine_total:
        print("  warning: other processes were busy during the run: run again on a quiet machine")
    if load.server_changed:
        print("  note: server processes changed during the window; the CPU figure undercounts")
    if load.ran_out:
        print(
            f"  note: {load.ran_out} virtual users ran out of tickets before the window ended: "
            "/s understates (per CPU-second still holds); raise --tickets"
        )


def report(
    args: argparse.Namespace,
    cas: LoadResult,
    hongliu: LoadResult,
    node_same: LoadResult,
    node_default: LoadResult,
) -> bool:
    """Print every figure and the verdicts; True when both targets are met."""
    print()
    print(
        f"{os.cpu_count()} cores; gunicorn {args.workers} workers × {args.threads} threads "
        f"(deploy/gunicorn.conf.py); {args.clients} client processes with "
        f"{args.concurrency} virtual users; {args.seconds:.0f} s measured after "
        f"{args.warmup:.0f} s of warm-up"
    )
    describe(cas, "validations", "gunicorn master + workers", stack=True)
    describe(hongliu, "refreshes", "gunicorn master + workers", stack=True)
    describe(node_same, "refreshes", "the node process", stack=False)
    describe(node_default, "refreshes", "the node process", stack=False)
    cas_ok = cas.per_cpu_second >= TARGET_CAS and not cas.failures and cas.successes > 0
    ratio = hongliu.per_cpu_second / node_same.per_cpu_second if node_same.per_cpu_second else 0.0
    ratio_default = (
        hongliu.per_cpu_second / node_default.per_cpu_second if node_default.per_cpu_second else 0.0
    )
    clean = not (hongliu.failures or node_same.failures) and hongliu.successes > 0
    refresh_ok = ratio >= TARGET_RATIO and clean and node_same.successes > 0
    print()
    print(
        f"CAS p3/serviceValidate: {cas.per_cpu_second:.1f} validations per server CPU-second "
        f"(target ≥ {TARGET_CAS:.0f}) → {'PASS' if cas_ok else 'FAIL'}"
    )
    print(
        f"refresh grant: Hongliu {hongliu.per_cpu_second:.1f} per server CPU-s ÷ oidc-provider "
        f"{node_same.per_cpu_second:.1f} per CPU-s (same work, no ID token) = {ratio:.2f} "
        f"(target ≥ {TARGET_RATIO}) → {'PASS' if refresh_ok else 'FAIL'}"
    )
    print(
        f"  against oidc-provider's default refresh (new ID token each time, "
        f"{node_default.per_cpu_second:.1f} per CPU-s): {ratio_default:.2f}"
    )
    return cas_ok and refresh_ok


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
    parser.add_argument(
        "--tickets",
        type=int,
        help=f"service tickets to mint (default {POOL_RATE} × serving cores × load seconds)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="afterwards, profile N validations and N refreshes in-process and print top costs",
    )
    args = parser.parse_args(argv)
    args.concurrency = args.concurrency or 2 * args.workers
    args.clients = max(1, min(args.clients, args.concurrency))
    if min(args.seconds, args.workers, args.concurrency) <= 0 or args.warmup < 0:
        parser.error("durations, workers and concurrency must be positive")
    serving = min(args.workers, cores)
    args.tickets = args.tickets or math.ceil(POOL_RATE * serving * (args.seconds + args.warmup))
    return args


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: cleanup still runs


def main(argv: Sequence[str] | None = None) -> int:
    """Set up, measure, report, clean up."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    admin_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        prepare_node()
        clear_redis(
            redis_url, STORE_PREFIX
        )  # Redis first: when it is down, nothing has been created yet
        recreate_database(admin_url, DB_NAME)
    except Unreachable as exc:
        print(f"protocols benchmark: {exc}")
        return 2
    saved_environ = dict(os.environ)
    ok = False
    servers: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="hongliu-protocols-bench-") as tmp:
            port = free_port()
            base_url = f"http://127.0.0.1:{port}"
            env = app_environment(
                bench_database_url(admin_url, DB_NAME), redis_url, Path(tmp) / "outbox", base_url
            )
            started = time.perf_counter()
            flask_cli(env, "db", "upgrade", what="db upgrade")
            app, password = create_account(env)
            client = register_clients(env)
            creds = (client.client_id, client.client_secret)
            print(
                f"database {DB_NAME} migrated, account, CAS service and OIDC client registered "
                f"in {time.perf_counter() - started:.1f} s"
            )
            log = Path(tmp) / "gunicorn.log"
            # Each worker serves thousands of requests in the window: no recycling inside it.
            gunicorn = start_gunicorn(
                env, args.workers, port, log, threads=args.threads, max_requests=0
            )
            servers.append(gunicorn)
            wait_until_ready(base_url + "/healthz", gunicorn, log, "protocols benchmark: gunicorn")

            started = time.perf_counter()
            tickets = mint_tickets(base_url, password, args.tickets, args.concurrency)
            print(
                f"{len(tickets)} service tickets minted through /cas/login in "
                f"{time.perf_counter() - started:.1f} s"
            )

            def measure(label: str, job: Job, server_pid: int, payloads: list[Any]) -> LoadResult:
                return run_load(
                    label,
                    job,
                    server_pid,
                    payloads,
                    clients=args.clients,
                    warmup=args.warmup,
                    seconds=args.seconds,
                )

            cas = measure(
                "Hongliu CAS GET /cas/p3/serviceValidate",
                Job("cas", url=base_url + "/cas/p3/serviceValidate"),
                gunicorn.pid,
                [tickets[v :: args.concurrency] for v in range(args.concurrency)],
            )
            document = discover(base_url)
            hongliu = measure(
                "Hongliu OIDC refresh grant (POST /oauth2/token)",
                Job("refresh", endpoint=TokenEndpoint(document["token_endpoint"], *creds)),
                gunicorn.pid,
                refresh_tokens(
                    args.concurrency, document, client, lambda: sign_in(base_url, password)
                ),
            )
            if gunicorn.poll() is not None or cas.failures or hongliu.failures:
                print(f"last lines of the gunicorn log:\n{tail(log, 10)}")
            stop_server(gunicorn)
            servers.remove(gunicorn)

            node_port, node_log = free_port(), Path(tmp) / "node.log"
            node_url = f"http://127.0.0.1:{node_port}"
            node = start_node(node_port, client, node_log)
            servers.append(node)
            wait_until_ready(
                node_url + "/.well-known/openid-configuration",
                node,
                node_log,
                "protocols benchmark: node op.mjs",
            )
            node_document = discover(node_url)
            node_runs = [
                measure(
                    f"oidc-provider refresh grant (node op.mjs), {what}",
                    Job(
                        "refresh",
                        endpoint=TokenEndpoint(node_document["token_endpoint"], *creds, extra),
                    ),
                    node.pid,
                    refresh_tokens(args.concurrency, node_document, client, browser),
                )
                for what, extra in NODE_VARIANTS
            ]
            if node.poll() is not None or any(run.failures for run in node_runs):
                print(f"last lines of the node log:\n{tail(node_log, 10)}")
            stop_server(node)
            servers.remove(node)

            ok = report(args, cas, hongliu, *node_runs)
            if args.profile > 0:
                profile_requests(app, password, client, args.profile)
    finally:
        for server in servers:
            stop_server(server)
        os.environ.clear()
        os.environ.update(saved_environ)
        try:
            drop_database(admin_url, DB_NAME)
            clear_redis(redis_url, STORE_PREFIX)
        except Unreachable as exc:
            print(f"protocols benchmark: cleanup: {exc}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
