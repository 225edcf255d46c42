"""``make run``: the whole product on a laptop — both apps on SQLite with demo data.

Migrates both databases, loads the idempotent demo data, registers the hall at the IdP as an
OIDC client and as a directory reader (once: the credentials are kept in
``instance/hall-oidc.json`` and ``instance/hall-directory.json`` and reused while the IdP still
knows them), starts the IdP on 127.0.0.1:5000 and the hall on 127.0.0.1:5001, runs one
directory sync (``flask --app hall directory sync``) into the hall, prints
the URLs and demo accounts, and stops both on Ctrl-C. Settings come from the environment as
usual (see README); nothing here overrides them — a ``HALL_OIDC_CLIENT_ID`` of your own wins.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
APPS = (("idp", 5000, "统一身份认证 IdP"), ("hall", 5001, "红柳易办 service hall"))
HALL_URL = "http://127.0.0.1:5001"
#: The hall's dev registration at the IdP (client_id and secret), made by the first `make run`.
HALL_CREDENTIALS = ROOT / "instance" / "hall-oidc.json"
#: The hall's directory-sync registration (client credentials, scope directory.read).
HALL_DIRECTORY_CREDENTIALS = ROOT / "instance" / "hall-directory.json"


def flask(app: str, *args: str) -> str:
    """Run one ``flask --app`` command; exit with its own message if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", app, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr or result.stdout)
        raise SystemExit(f"make run: `flask --app {app} {' '.join(args)}` failed")
    return result.stdout


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_until_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    """Block until ``url``/healthz answers, or fail if the server died."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"make run: the server for {url} exited at start (see above)")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"make run: {url} did not become healthy in 30 s")


def _last_json_line(output: str) -> Any:
    return json.loads(output.strip().splitlines()[-1])


def _still_registered(client_id: str) -> bool:
    """Whether the IdP knows ``client_id``, enabled and with the hall's redirect URI."""
    for client in _last_json_line(flask("idp", "clients", "list", "--json")):
        if client.get("protocol") == "oidc" and client.get("client_id") == client_id:
            return bool(client.get("enabled")) and (
                f"{HALL_URL}/auth/callback" in client.get("redirect_uris", [])
            )
    return False


def hall_oidc_settings() -> dict[str, str]:
    """The hall's HALL_OIDC_CLIENT_ID/SECRET: kept from an earlier run, else registered now.

    Nothing when the user set their own; a new registration when the IdP's database was reset.
    """
    if os.environ.get("HALL_OIDC_CLIENT_ID") or os.environ.get("HALL_OIDC_CLIENT_SECRET"):
        return {}
    saved: dict[str, str] = {}
    if HALL_CREDENTIALS.exists():
        try:
            saved = json.loads(HALL_CREDENTIALS.read_text(encoding="utf-8"))
        except ValueError:
            saved = {}
    if not (saved.get("client_id") and saved.get("client_secret")) or not _still_registered(
        saved["client_id"]
    ):
        created = _last_json_line(
            flask(
                "idp",
                *("clients", "add-oidc", "红柳易办", "--first-party", "--json"),
                *("--redirect-uri", f"{HALL_URL}/auth/callback"),
                *("--post-logout-uri", f"{HALL_URL}/"),
                *("--backchannel-logout-uri", f"{HALL_URL}/auth/backchannel-logout"),
            )
        )
        saved = {"client_id": created["client_id"], "client_secret": created["client_secret"]}
        HALL_CREDENTIALS.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only from the start: the file holds the client secret.
        descriptor = os.open(HALL_CREDENTIALS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(saved, file)
        print(f"make run: registered the hall at the IdP as OIDC client {saved['client_id']}")
    return {
        "HALL_OIDC_CLIENT_ID": saved["client_id"],
        "HALL_OIDC_CLIENT_SECRET": saved["client_secret"],
    }


def _directory_client_known(client_id: str) -> bool:
    """Whether the IdP knows ``client_id`` as an enabled directory reader."""
    for client in _last_json_line(flask("idp", "clients", "list", "--json")):
        if client.get("protocol") == "oidc" and client.get("client_id") == client_id:
            return bool(client.get("enabled")) and "client_credentials" in client.get(
                "grant_types", []
            )
    return False


def hall_directory_settings() -> dict[str, str]:
    """HALL_DIRECTORY_CLIENT_ID/SECRET: kept from an earlier run, else registered now.

    The hall reads the IdP's SCIM API with a client-credentials token (scope directory.read).
    """
    if os.environ.get("HALL_DIRECTORY_CLIENT_ID") or os.environ.get("HALL_DIRECTORY_CLIENT_SECRET"):
        return {}
    saved: dict[str, str] = {}
    if HALL_DIRECTORY_CREDENTIALS.exists():
        try:
            saved = json.loads(HALL_DIRECTORY_CREDENTIALS.read_text(encoding="utf-8"))
        except ValueError:
            saved = {}
    if not (saved.get("client_id") and saved.get("client_secret")) or not (
        _directory_client_known(saved["client_id"])
    ):
        created = _last_json_line(
            flask(
                "idp",
                *("clients", "add-oidc", "红柳易办目录同步", "--json"),
                *("--grant-type", "client_credentials", "--scope", "directory.read"),
            )
        )
        saved = {"client_id": created["client_id"], "client_secret": created["client_secret"]}
        HALL_DIRECTORY_CREDENTIALS.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(
            HALL_DIRECTORY_CREDENTIALS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600
        )
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(saved, file)
        print(f"make run: registered the hall's directory sync as client {saved['client_id']}")
    return {
        "HALL_DIRECTORY_CLIENT_ID": saved["client_id"],
        "HALL_DIRECTORY_CLIENT_SECRET": saved["client_secret"],
    }


def sync_directory(settings: dict[str, str]) -> None:
    """One directory sync into the hall (the IdP must be serving); a failure only warns."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "hall", "directory", "sync"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **settings},
    )
    if result.returncode == 0:
        print(f"make run: {result.stdout.strip()}")
    else:
        print(f"make run: directory sync failed: {(result.stderr or result.stdout).strip()}")


def main() -> None:
    """Prepare, start, report, wait."""
    for _app, port, _ in APPS:
        if not port_is_free(port):
            raise SystemExit(
                f"make run: port {port} is already in use (another `make run`?) — stop it first"
            )
    accounts: list[dict[str, str]] = []
    for app, _, _ in APPS:
        flask(app, "db", "upgrade")
        output = flask(app, "demo", "--json")
        accounts += json.loads(output.strip().splitlines()[-1]).get("accounts", [])
    app_settings = {"hall": {**hall_oidc_settings(), **hall_directory_settings()}}

    processes: list[subprocess.Popen[bytes]] = []

    def stop(*_: object) -> None:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        for app, port, _ in APPS:
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "flask",
                        "--app",
                        app,
                        "run",
                        "--no-reload",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                    ],
                    cwd=ROOT,
                    env={**os.environ, **app_settings.get(app, {}), "PYTHONUNBUFFERED": "1"},
                )
            )
        for (_app, port, _), process in zip(APPS, processes, strict=True):
            wait_until_healthy(f"http://127.0.0.1:{port}", process)
        sync_directory(app_settings["hall"])

        print("\n" + "=" * 64)
        for _app, port, label in APPS:
            print(f"  {label:<28} http://127.0.0.1:{port}/")
        if accounts:
            print("\n  Demo accounts (account / password — role):")
            for account in accounts:
                print(
                    f"    {account['account']:<14} {account.get('password', ''):<16} "
                    f"{account.get('role', account.get('kind', ''))}"
                )
        else:
            print("\n  No demo accounts yet.")
        print("  Outbox (SMS and mail codes): instance/outbox/*.jsonl")
        print("  Press Ctrl-C to stop both apps.")
        print("=" * 64 + "\n", flush=True)
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        raise SystemExit("make run: a server stopped unexpectedly (see above)")
    except KeyboardInterrupt:
        print("\nStopping…")
    finally:
        stop()


if __name__ == "__main__":
    main()
