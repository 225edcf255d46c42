"""Directory sync: the hall's copy of people, departments and positions, read from the IdP's
SCIM API (``/scim/v2``) with a client-credentials token, so approvals can be routed to people
who have never signed in to the hall.

The first run (and one a day after, or ``--full``) reads everything and marks people the IdP
no longer lists inactive (never deleted: applications still name them). Other runs ask only
for what changed: ``meta.lastModified gt`` the newest change seen, less a minute of overlap
(a transaction that committed late is still caught; re-reading a row is harmless).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app

from hall.audit.operations import CLI_ACTOR, record
from hall.auth.models import HallUser, aware, utcnow
from hall.catalog.models import Service
from hall.catalog.search import refresh_search_columns
from hall.directory.models import Department, DirectorySyncState, Position
from hall.extensions import db

SCOPE = "directory.read"
PAGE_SIZE = 500
#: Incremental runs re-read this much before the last change seen.
OVERLAP = timedelta(seconds=60)
#: A complete run happens at least this often, so removals are noticed.
FULL_EVERY = timedelta(days=1)
CAMPUS_USER = "urn:hongliu:params:scim:schemas:extension:campus:2.0:User"
CAMPUS_GROUP = "urn:hongliu:params:scim:schemas:extension:campus:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


class SyncError(RuntimeError):
    """The sync could not run; the message says what to fix."""


@dataclass
class SyncReport:
    """What one run did."""

    full: bool = False
    users_created: int = 0
    users_updated: int = 0
    users_deactivated: int = 0
    departments: int = 0
    positions: int = 0
    positions_removed: int = 0
    started_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The report as ``--json`` prints it."""
        return asdict(self)


@dataclass
class DirectoryClient:
    """The IdP's SCIM API behind a client-credentials token (Authlib's requests session)."""

    issuer: str
    client_id: str
    client_secret: str
    timeout: float = 30.0
    session: OAuth2Session = field(init=False)

    def __post_init__(self) -> None:
        self.issuer = self.issuer.rstrip("/")
        try:
            discovery = requests.get(
                self.issuer + "/.well-known/openid-configuration", timeout=self.timeout
            )
            discovery.raise_for_status()
            token_endpoint = discovery.json()["token_endpoint"]
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise SyncError(
                f"cannot read the IdP's discovery document at {self.issuer}: {exc}"
            ) from None
        self.session = OAuth2Session(
            self.client_id,
            self.client_secret,
            scope=SCOPE,
            token_endpoint=token_endpoint,
            grant_type="client_credentials",
        )
        try:
            self.session.fetch_token(token_endpoint, grant_type="client_credentials")
        except (OAuthError, requests.RequestException) as exc:
            raise SyncError(
                f"the IdP refused a directory token for {self.client_id}: {exc}"
            ) from None

    def close(self) -> None:
        """Release the HTTP connections."""
        self.session.close()

    def resources(self, endpoint: str, changed_after: datetime | None) -> Iterator[dict[str, Any]]:
        """Every resource of ``/Users`` or ``/Groups`` (changed after a moment), page by page."""
        params: dict[str, Any] = {"count": PAGE_SIZE}
        if changed_after is not None:
            moment = changed_after.astimezone(UTC).isoformat().replace("+00:00", "Z")
            params["filter"] = f'meta.lastModified gt "{moment}"'
        start = 1
        while True:
            params["startIndex"] = start
            try:
                # Authlib fetches a new token itself when this one has expired.
                response = self.session.get(
                    f"{self.issuer}/scim/v2{endpoint}", params=params, timeout=self.timeout
                )
            except (OAuthError, requests.RequestException) as exc:
                raise SyncError(f"the IdP's directory did not answer: {exc}") from None
            if response.status_code != 200:
                detail = _error_detail(response)
                raise SyncError(f"the IdP's directory answered {response.status_code}: {detail}")
            items, total = _list_page(response, endpoint)
            yield from items
            start += len(items)
            if start > total:
                return
            if not items:
                # A listing that stops short would make a complete run mark everyone after the
                # gap inactive (and drop their positions), and an incremental one skip changes.
                raise SyncError(
                    f"the IdP's directory listing of {endpoint} stopped after {start - 1} of "
                    f"{total} resources; nothing was marked inactive, the next run reads again"
                )

    def resource(self, endpoint: str, resource_id: str) -> dict[str, Any] | None:
        """The one resource ``/Users/<id>`` or ``/Groups/<id>``; None when the IdP has no such
        resource (a SCIM 404)."""
        try:
            response = self.session.get(
                f"{self.issuer}/scim/v2{endpoint}/{quote(resource_id, safe='')}",
                timeout=self.timeout,
            )
        except (OAuthError, requests.RequestException) as exc:
            raise SyncError(f"the IdP's directory did not answer: {exc}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            detail = _error_detail(response)
            raise SyncError(f"the IdP's directory answered {response.status_code}: {detail}")
        try:
            found = response.json()
        except ValueError:
            found = None
        if not isinstance(found, dict):
            raise SyncError(
                f"the IdP's directory answered {endpoint}/{resource_id} with something that is "
                f"not a SCIM resource: {response.text[:200]!r}"
            )
        return found


def _list_page(response: requests.Response, endpoint: str) -> tuple[list[dict[str, Any]], int]:
    """The resources and ``totalResults`` of one SCIM ListResponse page, or a SyncError."""
    try:
        page = response.json()
        items = page.get("Resources") or []
        total = int(page.get("totalResults", 0))
    except (ValueError, TypeError, AttributeError):
        items, total = None, 0
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise SyncError(
            f"the IdP's directory answered {endpoint} with something that is not a SCIM list: "
            f"{response.text[:200]!r}"
        )
    return items, total


def _error_detail(response: requests.Response) -> str:
    try:
        return str(response.json().get("detail", ""))[:300]
    except ValueError:
        return response.text[:300]


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _text(value: Any, limit: int) -> str | None:
    return str(value).strip()[:limit] or None if isinstance(value, str | int) else None


def _first_value(items: Any) -> str | None:
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return _text(items[0].get("value"), 255)
    return None


def _state() -> DirectorySyncState:
    state = db.session.get(DirectorySyncState, 1)
    if state is None:
        state = DirectorySyncState(id=1)
        db.session.add(state)
    return state


class _Latest:
    """The newest ``meta.lastModified`` seen."""

    def __init__(self) -> None:
        self.value: datetime | None = None

    def see(self, resource: dict[str, Any]) -> None:
        moment = _time((resource.get("meta") or {}).get("lastModified"))
        if moment is not None and (self.value is None or moment > self.value):
            self.value = moment


def _apply_user(resource: dict[str, Any], user: HallUser, now: datetime) -> None:
    campus = resource.get(CAMPUS_USER) or {}
    enterprise = resource.get(ENTERPRISE) or {}
    user.account = _text(resource.get("userName"), 64) or user.account or user.sub[:64]
    name = resource.get("displayName") or (resource.get("name") or {}).get("formatted")
    user.name = _text(name, 128) or user.name or user.account
    user.kind = _text(resource.get("userType"), 32)
    user.department_code = _text(campus.get("departmentCode"), 64)
    user.department_name = _text(enterprise.get("department"), 255)
    # The directory serves only contacts their owner verified: those are the ones to use.
    user.email = _first_value(resource.get("emails"))
    user.phone = _first_value(resource.get("phoneNumbers"))
    user.active = resource.get("active") is not False
    user.updated_at = now
    user.directory_synced_at = now


def _sync_users(client: DirectoryClient, since: datetime | None, report: SyncReport) -> _Latest:
    latest = _Latest()
    batch: list[dict[str, Any]] = []
    for resource in client.resources("/Users", since):
        if isinstance(resource.get("id"), str):
            batch.append(resource)
        latest.see(resource)
        if len(batch) >= PAGE_SIZE:
            _write_users(batch, report)
            batch = []
    if batch:
        _write_users(batch, report)
    return latest


def _write_users(batch: list[dict[str, Any]], report: SyncReport) -> None:
    subs = [resource["id"] for resource in batch]
    known = {
        user.sub: user
        for user in db.session.scalars(db.select(HallUser).where(HallUser.sub.in_(subs)))
    }
    now = utcnow()
    for resource in batch:
        user = known.get(resource["id"])
        if user is None:
            user = HallUser(sub=resource["id"], account="", name="", created_at=now)
            db.session.add(user)
            known[user.sub] = user
            report.users_created += 1
        else:
            report.users_updated += 1
        _apply_user(resource, user, now)
    db.session.commit()


def _upsert_department(resource: dict[str, Any], codes: dict[str, Department]) -> str | None:
    code = _text(resource.get("externalId"), 64)
    if code is None:
        return None
    department = codes.get(code)
    if department is None:
        department = Department(code=code, name="")
        db.session.add(department)
        codes[code] = department
    department.name = _text(resource.get("displayName"), 200) or code
    parent = ((resource.get(CAMPUS_GROUP) or {}).get("parent") or {}).get("externalId")
    return parent if isinstance(parent, str) else None


def _sync_groups(
    client: DirectoryClient, since: datetime | None, report: SyncReport, full: bool
) -> _Latest:
    latest = _Latest()
    codes = {d.code: d for d in db.session.scalars(db.select(Department))}
    names_before = {code: department.name for code, department in codes.items()}
    parents: dict[str, str | None] = {}
    posts: list[dict[str, Any]] = []
    for resource in client.resources("/Groups", since):
        latest.see(resource)
        kind = (resource.get(CAMPUS_GROUP) or {}).get("kind")
        if kind == "department":
            code = _text(resource.get("externalId"), 64)
            if code:
                parents[code] = _upsert_department(resource, codes)
                report.departments += 1
        elif kind == "position" and isinstance(resource.get("id"), str):
            posts.append(resource)
    if full:
        posts += _recheck_unlisted_positions(client, posts)
    db.session.flush()
    for code, parent_code in parents.items():
        if parent_code is None:
            codes[code].parent_id = None
        elif parent_code in codes and parent_code != code:
            codes[code].parent_id = codes[parent_code].id
        # A parent the hall has not seen yet is set by the next complete run.
    _refresh_services_of_renamed(
        [d.id for code, d in codes.items() if code in names_before and d.name != names_before[code]]
    )
    _write_positions(posts, codes, report, full)
    db.session.commit()
    return latest


def _refresh_services_of_renamed(department_ids: list[int]) -> None:
    """A department's name is part of its services' search text (一事联办 finds 教务处's
    services by 教务处): a renamed one's services are found by the new name from now on."""
    if department_ids:
        for service in db.session.scalars(
            db.select(Service).where(Service.department_id.in_(department_ids))
        ):
            refresh_search_columns(service)


def _recheck_unlisted_positions(
    client: DirectoryClient, posts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The positions the hall holds that a complete listing left out, asked for one by one.

    Paging is by offset: a department or position deleted at the IdP while the listing ran
    moves every later group one place back, so one of them falls between two pages. Deleting
    what was merely skipped would route its approvals elsewhere until the next complete run; a
    position goes only when the IdP answers 404 for it.
    """
    listed = {post["id"][:64] for post in posts}
    still_there = []
    for scim_id in db.session.scalars(db.select(Position.scim_id)):
        if scim_id in listed:
            continue
        found = client.resource("/Groups", scim_id)
        if (
            found is not None
            and found.get("id") == scim_id
            and (found.get(CAMPUS_GROUP) or {}).get("kind") == "position"
        ):
            still_there.append(found)
    return still_there


def _write_positions(
    posts: list[dict[str, Any]], codes: dict[str, Department], report: SyncReport, full: bool
) -> None:
    now = utcnow()
    existing = {p.scim_id: p for p in db.session.scalars(db.select(Position))}
    member_subs = {
        member.get("value")
        for post in posts
        for member in post.get("members") or []
        if isinstance(member, dict)
    }
    people = {
        user.sub: user
        for user in db.session.scalars(
            db.select(HallUser).where(
                HallUser.sub.in_([s for s in member_subs if isinstance(s, str)])
            )
        )
    }
    seen: set[str] = set()
    for post in posts:
        scim_id = post["id"][:64]
        seen.add(scim_id)
        extension = post.get(CAMPUS_GROUP) or {}
        position = existing.get(scim_id)
        if position is None:
            position = Position(scim_id=scim_id, kind="", title="")
            db.session.add(position)
            existing[scim_id] = position
        position.kind = _text(extension.get("positionKind"), 32) or ""
        position.title = _text(post.get("displayName"), 200) or position.kind
        code = (extension.get("department") or {}).get("externalId")
        department = codes.get(code) if isinstance(code, str) else None
        position.department_id = department.id if department is not None else None
        position.holders = [
            people[member["value"]]
            for member in post.get("members") or []
            if isinstance(member, dict) and member.get("value") in people
        ]
        position.synced_at = now
        report.positions += 1
    if full:
        for scim_id, position in existing.items():
            if scim_id not in seen:
                db.session.delete(position)
                report.positions_removed += 1


def _deactivate_unlisted(started: datetime) -> int:
    """People the complete listing did not include: inactive, never deleted."""
    result = db.session.execute(
        db.update(HallUser)
        .where(
            HallUser.active.is_(True),
            HallUser.created_at < started,
            db.or_(HallUser.directory_synced_at.is_(None), HallUser.directory_synced_at < started),
            db.or_(HallUser.last_sign_in_at.is_(None), HallUser.last_sign_in_at < started),
        )
        .values(active=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def sync_directory(*, full: bool = False, client: DirectoryClient | None = None) -> SyncReport:
    """One run: Users, then Groups (positions need their holders); commits as it goes."""
    config = current_app.config
    if client is None:
        client_id, secret = config.get("DIRECTORY_CLIENT_ID"), config.get("DIRECTORY_CLIENT_SECRET")
        if not client_id or not secret:
            raise SyncError(
                "set HALL_DIRECTORY_CLIENT_ID and HALL_DIRECTORY_CLIENT_SECRET (register the hall "
                "at the IdP: flask --app idp clients add-oidc 红柳易办目录同步 "
                "--grant-type client_credentials --scope directory.read --json)"
            )
        client = DirectoryClient(config["OIDC_ISSUER"], client_id, secret)
    state = _state()
    started = utcnow()
    full = (
        full
        or state.users_modified is None
        or state.last_full_at is None
        or aware(state.last_full_at) < started - FULL_EVERY
    )
    report = SyncReport(full=full, started_at=started.isoformat())
    users_since = (
        None if full or state.users_modified is None else aware(state.users_modified) - OVERLAP
    )
    groups_since = (
        None if full or state.groups_modified is None else aware(state.groups_modified) - OVERLAP
    )
    db.session.commit()
    try:
        users_latest = _sync_users(client, users_since, report)
        groups_latest = _sync_groups(client, groups_since, report, full)
        if full:
            report.users_deactivated = _deactivate_unlisted(started)
    except SyncError as exc:
        db.session.rollback()
        state = _state()
        state.last_run_at = utcnow()
        state.last_result = json.dumps({"error": str(exc)}, ensure_ascii=False)
        db.session.commit()
        raise
    finally:
        client.close()
    state = _state()
    if users_latest.value is not None:
        state.users_modified = max(
            users_latest.value, aware(state.users_modified or users_latest.value)
        )
    if groups_latest.value is not None:
        state.groups_modified = max(
            groups_latest.value, aware(state.groups_modified or groups_latest.value)
        )
    if full:
        state.last_full_at = started
    state.last_run_at = utcnow()
    state.last_result = json.dumps(report.as_dict(), ensure_ascii=False)
    record("directory.sync", CLI_ACTOR, "directory:idp", report.as_dict())
    db.session.commit()
    return report
