"""Brute-force protection for password sign-in, shared by every process through the store.

Per account: attempts are *reserved* atomically before the password is checked, so parallel
guesses cannot get past the limit. Every ``LOCKOUT_EVERY`` failures the account's password
sign-in pauses, longer each time (``LOCKOUT_DURATIONS``). SMS sign-in and recovery are not
affected, so a lock never keeps the owner out. After ``LOGIN_CAPTCHA_AFTER`` failures with the
same identifier as typed a CAPTCHA is required: counted per identifier, not per account, so that
whether a CAPTCHA appears tells nothing about which identifiers are on file.

Per IP: failures only, and only ever lead to a CAPTCHA — a whole campus signs in from behind a
few NAT addresses, so an IP is never locked or slowed. Addresses in ``SHARED_NETWORKS`` (those
NAT addresses) get ``SHARED_NETWORK_SCALE`` times the per-address thresholds, here and for
verification codes (:func:`address_scale`): otherwise a morning's typos would put a CAPTCHA
before everyone on campus.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address

from flask import current_app

from idp.policy_settings import effective_config
from shared.factory import get_store

IP_WINDOW = 3600


@dataclass(frozen=True)
class Attempt:
    """The outcome of reserving an attempt: allowed, or refused because of a lock."""

    allowed: bool
    number: int = 0
    #: Seconds of the lock this attempt set in advance, being the last of its block.
    locks_for: int | None = None


def account_key(subject: str) -> str:
    """Counters are keyed by a digest: identifiers (phones, ID numbers) never sit in Redis."""
    return hashlib.sha256(subject.encode()).hexdigest()[:32]


def _keys(subject: str, every: int | None = None) -> tuple[str, str, str]:
    """The account's failure count, lock and lock level.

    The count and the level are kept per ``LOCKOUT_EVERY`` value: they only make sense in its
    blocks, and an administrator changing it mid-window must not strand an account between
    blocks (a lock due that is never set). A lock in place stays until it expires.
    """
    if every is None:
        every = int(effective_config()["LOCKOUT_EVERY"])
    key = account_key(subject)
    return f"login-fail:{every}:{key}", _lock_key(subject), f"login-level:{every}:{key}"


def _lock_key(subject: str) -> str:
    return f"login-lock:{account_key(subject)}"


def _ip_key(ip: str) -> str:
    return f"login-ip:{account_key(ip)}"


def address_scale(ip: str | None) -> int:
    """How many times the per-address limits an address gets: ``SHARED_NETWORK_SCALE`` inside
    ``SHARED_NETWORKS`` (many people behind one address), else 1."""
    # Deployment settings (IDP_*), not console policy: no overrides to lay over them.
    config = current_app.config
    networks = config["SHARED_NETWORKS"]
    if not ip or not networks:
        return 1
    try:
        address = ip_address(ip)
    except ValueError:
        return 1
    if any(address.version == network.version and address in network for network in networks):
        return int(config["SHARED_NETWORK_SCALE"])
    return 1


def is_locked(subject: str) -> bool:
    """True while a temporary lock holds for this account."""
    return get_store().get(_lock_key(subject)) is not None


def reserve_attempt(subject: str) -> Attempt:
    """Count this attempt before checking the password; refuse it if a lock applies."""
    config = effective_config()
    every: int = config["LOCKOUT_EVERY"]
    durations: tuple[int, ...] = config["LOCKOUT_DURATIONS"]

    def lock_after(block: int, number: int) -> int:
        return durations[min(block, len(durations)) - 1]

    return reserve_in_blocks(_keys(subject, every), every, config["LOCKOUT_WINDOW"], lock_after)


def reserve_in_blocks(
    keys: tuple[str, str, str],
    every: int,
    window: int,
    lock_after: Callable[[int, int], int],
    most: int | None = None,
) -> Attempt:
    """Count an attempt in the store before it is checked, so parallel guesses cannot pass the
    limit; refuse it while a lock holds. ``keys``: the failure count, the lock and the lock
    level; ``lock_after(block, number)``: seconds of the lock that ends the ``block``-th block
    of ``every`` attempts (from 1); ``most``: no attempt past this number is allowed, and the
    one reaching it locks as the end of a block does. Password sign-in and two-step codes both.

    Attempt ``n`` belongs to block ``(n - 1) // every``; block ``k >= 1`` may only run once the
    lock that ended block ``k`` has been set and has expired. The last attempt of a block sets
    the next lock *before* it is checked, so concurrent attempts find it in place
    (:attr:`Attempt.locks_for`: a success lifts it by clearing the keys).
    """
    store = get_store()
    fail, lock, level = keys
    counted = store.hit_unless(fail, window, lock)  # a lock in place: refused, not counted
    if counted is None:
        return Attempt(False)
    number = counted
    block = (number - 1) // every
    # Read the level before the lock: the lock is written before the level, so a level that
    # shows this block has begun guarantees its lock is already visible (reading the other way
    # round, a lock could appear between the two reads and slip an attempt through).
    too_many = most is not None and number > most
    if too_many or (block >= 1 and (int(store.get(level) or 0) < block or store.get(lock))):
        return Attempt(False, number)
    if number % every == 0 or (most is not None and number == most):
        served = -(-number // every)
        seconds = lock_after(served, number)
        store.set(lock, "1", seconds)
        store.set(level, str(served), window)
        return Attempt(True, number, seconds)
    return Attempt(True, number)


def record_success(subject: str, *also: str) -> None:
    """A correct password clears the account's counters and any pre-set lock.

    ``also``: other subjects whose failure counts (:func:`record_failure`) go with them.
    """
    every = int(effective_config()["LOCKOUT_EVERY"])
    get_store().delete(*_keys(subject, every), *(_keys(other, every)[0] for other in also))


def failures(subject: str) -> int:
    """Failed (or in-flight) attempts counted for the account in the current window."""
    fail, _, _ = _keys(subject)
    return get_store().count(fail)


def record_ip_failure(ip: str | None) -> None:
    """Count a failure from this address (for the CAPTCHA threshold only)."""
    if ip:
        get_store().hit(_ip_key(ip), IP_WINDOW)


def captcha_required(subject: str | None, ip: str | None) -> bool:
    """True when the account or the address has failed often enough to need a CAPTCHA."""
    config = effective_config()
    limits: list[tuple[str, int]] = []
    if subject:
        fail = _keys(subject, config["LOCKOUT_EVERY"])[0]
        limits.append((fail, config["LOGIN_CAPTCHA_AFTER"]))
    if ip:
        limits.append((_ip_key(ip), config["LOGIN_IP_CAPTCHA_AFTER"] * address_scale(ip)))
    if not limits:
        return False
    # Both counters in one round trip: every sign-in asks.
    counted = get_store().counts(*(key for key, _ in limits))
    return any(count >= limit for count, (_, limit) in zip(counted, limits, strict=True))


def record_failure(subject: str) -> int:
    """Count a failed verification for ``subject`` (activation, recovery…); returns the count.

    Only feeds :func:`captcha_required`; locks are for password sign-in alone.
    """
    fail, _, _ = _keys(subject)
    return get_store().hit(fail, effective_config()["LOCKOUT_WINDOW"])
