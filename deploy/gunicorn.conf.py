"""Gunicorn settings for both apps in production; every value can be changed from the environment.

    gunicorn -c /etc/hongliu/gunicorn.conf.py 'idp:create_app()'    # the IdP
    gunicorn -c /etc/hongliu/gunicorn.conf.py 'hall:create_app()'   # the service hall

The apps themselves read ``IDP_*`` / ``HALL_*`` (see README "Configuration"); this file reads
only ``GUNICORN_*``:

GUNICORN_BIND            address(es) to listen on, comma-separated   127.0.0.1:8000
GUNICORN_THREADS         threads per worker; > 1 selects gthread     1
GUNICORN_WORKERS         worker processes                            see below
GUNICORN_WORKER_CLASS    sync or gthread                             from GUNICORN_THREADS
GUNICORN_TIMEOUT         seconds a request may take                  30
GUNICORN_GRACEFUL_TIMEOUT  seconds to finish requests on stop/reload 30
GUNICORN_KEEPALIVE       seconds an idle proxy connection stays open 5
GUNICORN_MAX_REQUESTS    recycle a worker after this many requests   2000 (0: never)
GUNICORN_MAX_REQUESTS_JITTER  random extra, so workers don't recycle together  200
GUNICORN_FORWARDED_ALLOW_IPS  proxies trusted for X-Forwarded-Proto  127.0.0.1
GUNICORN_ACCESSLOG / GUNICORN_ERRORLOG  file, or - for stdout/stderr -
GUNICORN_LOGLEVEL        debug, info, warning, error, critical        info
GUNICORN_PROC_NAME       process title (ps, top)                      hongliu
GUNICORN_WORKER_TMP_DIR  worker heartbeat files                       /dev/shm if writable

Workers. The classic "2 x cores + 1" suits sync workers that mostly wait on the database: it is
the default for the hall. The IdP is different: every password login runs argon2 (about 7 MiB
and 15-20 milliseconds of pure CPU), so more processes than cores only queue hashing behind
each other while multiplying memory. Run the IdP with GUNICORN_THREADS=4 (gthread): then the
default becomes one worker per core, and the threads absorb waits on the database, Redis and SMS
gateways. The computed default is capped at 16 per instance; to go further, run more instances
behind the proxy rather than one huge one. Each worker has its own database pool and holds about
one PostgreSQL connection per thread (SQLAlchemy allows 15 at most): instances x workers x
threads must stay well below PostgreSQL's max_connections, or put PgBouncer in between.
"""

from __future__ import annotations

import os

#: The computed default never exceeds this; an explicit GUNICORN_WORKERS is taken as given.
MAX_DEFAULT_WORKERS = 16


def _env_int(name: str, default: int, minimum: int) -> int:
    """An integer from ``name``, or ``default``; a malformed value names the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is invalid: expected a whole number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} is invalid: must be at least {minimum}")
    return value


def _env_str(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def usable_cores() -> int:
    """CPUs this process may run on (honours taskset/cpusets, not container CPU quotas).

    Under a CPU quota (docker --cpus, Kubernetes limits) set GUNICORN_WORKERS explicitly.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_workers(cores: int, threads: int) -> int:
    """One per core with threads (CPU-bound argon2), else 2 x cores + 1; capped."""
    wanted = cores if threads > 1 else 2 * cores + 1
    return max(1, min(wanted, MAX_DEFAULT_WORKERS))


# --- Sockets --------------------------------------------------------------------------------
# Listen on loopback (or a private address) only: nginx in front terminates TLS.
bind = [part.strip() for part in _env_str("GUNICORN_BIND", "127.0.0.1:8000").split(",")]
bind = [part for part in bind if part]
backlog = 2048

# --- Workers --------------------------------------------------------------------------------
threads = _env_int("GUNICORN_THREADS", 1, minimum=1)
worker_class = _env_str("GUNICORN_WORKER_CLASS", "gthread" if threads > 1 else "sync")
if worker_class not in {"sync", "gthread"}:
    # Both apps use blocking database drivers; gevent/eventlet would need monkey-patching.
    raise ValueError(f"GUNICORN_WORKER_CLASS={worker_class!r} is invalid: use sync or gthread")
workers = _env_int("GUNICORN_WORKERS", default_workers(usable_cores(), threads), minimum=1)

# A request that runs longer than this is killed and its worker replaced. nginx's
# proxy_read_timeout (35 s in deploy/nginx/hongliu.conf) is a little longer, so the client sees
# the app's own 500 page rather than a proxy 504.
timeout = _env_int("GUNICORN_TIMEOUT", 30, minimum=1)
# On SIGTERM (systemctl stop, docker stop) and SIGHUP (reload), workers get this long to finish
# the requests in hand. systemd's TimeoutStopSec and compose's stop_grace_period are longer.
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=1)
# Idle keep-alive connections from nginx (gthread only; sync workers close after each
# response). Longer than nginx's upstream keepalive_timeout (4 s), so nginx closes first and never
# sends a request down a connection gunicorn is closing.
keepalive = _env_int("GUNICORN_KEEPALIVE", 5, minimum=0)

# Recycle each worker after a number of requests, with jitter so that they don't all restart at
# once: bounds the damage of any slow leak in the app or a C extension.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 2000, minimum=0)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 200, minimum=0)

# Never preload. With preload the app (and so SQLAlchemy's engine and connection pool, and the
# Redis client) would be created once in the master and inherited by every forked worker: the
# workers would then share the same sockets to PostgreSQL and Redis and corrupt each other's
# conversations. Loading in each worker gives every process its own pools. It also lets
# `systemctl reload` (SIGHUP) pick up new code: the fresh workers import it again.
preload_app = False

# Workers signal they are alive by touching a file; on a disk-backed /tmp a busy disk can make
# healthy workers look hung. Use memory-backed /dev/shm where it exists (Docker has one).
_shm = "/dev/shm"  # noqa: S108 - not a temporary file of ours, gunicorn's heartbeat directory
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or (
    _shm if os.path.isdir(_shm) and os.access(_shm, os.W_OK) else None
)

# --- Proxy ----------------------------------------------------------------------------------
# Gunicorn believes X-Forwarded-Proto only from these addresses (individual IPs or *; no CIDR
# ranges). The apps themselves trust exactly IDP_PROXY_COUNT / HALL_PROXY_COUNT hops of
# X-Forwarded-For/Proto/Host (werkzeug ProxyFix), which is what client IPs in audit logs and rate
# limits rely on. Use * only when the app port is reachable from the proxy alone (compose).
forwarded_allow_ips = _env_str("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

# --- Logging --------------------------------------------------------------------------------
accesslog = _env_str("GUNICORN_ACCESSLOG", "-")
errorlog = _env_str("GUNICORN_ERRORLOG", "-")
loglevel = _env_str("GUNICORN_LOGLEVEL", "info")
# One line per request: proxy address, the client chain nginx saw, method, path, status, bytes,
# milliseconds, and the request id (the X-Request-ID the app answered with: nginx's $request_id
# or the caller's own), which also appears on every app log line for that request. The query
# string (and the Referer, which repeats one) is left out on purpose: it carries CAS tickets,
# OIDC authorization codes and one-time tokens, which must not end up in log files.
access_log_format = (
    '%(h)s xff="%({x-forwarded-for}i)s" %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms '
    'ua="%(a)s" rid=%({x-request-id}o)s'
)
proc_name = _env_str("GUNICORN_PROC_NAME", "hongliu")
