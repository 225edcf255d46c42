"""Filling a service's online form: reading a post, drafts (草稿箱), submitting, resubmitting.

A form is always filled against one form version: the newest when the applicant opens it, the
draft's when a draft is resumed, the application's when a returned application is edited.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from flask_babel import gettext as _
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict

from hall.auth.models import HallUser, utcnow
from hall.catalog.models import Service
from hall.extensions import db
from hall.forms import attachments
from hall.forms.models import Draft
from hall.forms.schema import FORM_ERROR, FormInput, coerce_form, field_names, widget_of
from hall.workflow import engine
from hall.workflow.definitions import field_permissions, parse_flow
from hall.workflow.models import Application, FormDefinition
from hall.workflow.operations import (
    SubmissionInvalid,
    act,
    latest_flow,
    latest_form,
    resubmit_data,
    submit_application,
    unknown_people,
)
from shared.factory import get_store
from shared.ids import row_id

#: Largest draft, as stored JSON: a draft skips validation, not every limit.
MAX_DRAFT_BYTES = 256 * 1024
#: Drafts one person may keep.
MAX_DRAFTS = 100
#: People one may choose for one approver node (自选审批人).
MAX_CHOSEN = 10
#: Form key of the approvers chosen for a node: ``chosen-<node id>``.
CHOICE_PREFIX = "chosen-"
#: How long a form page's submission is remembered: posting the same page again (a double
#: click, the browser's resend, a second tab of one draft) shows the first application.
SUBMISSION_TTL = 24 * 3600
#: How long a second post of a page waits for the first one, still being processed.
SUBMISSION_WAIT = 5.0
#: How long a claim without an outcome holds (a process that died mid-submission must not
#: block a draft's page for a day).
SUBMISSION_PENDING_TTL = 60
_SUBMISSION_PENDING = "pending"
_SUBMISSION_ID = re.compile(r"[A-Za-z0-9_-]{16,80}")


@dataclass(frozen=True)
class ApproverChoice:
    """An approver node whose approvers the applicant names (自选审批人), with what was typed."""

    node_id: str
    name: str
    value: str = ""
    errors: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The form field of the choice."""
        return CHOICE_PREFIX + self.node_id


@dataclass
class Posted:
    """A form post read into typed data, with problems of its attachments by field."""

    data: dict[str, Any]
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        """One more message for a field."""
        if message not in self.errors.setdefault(name, []):
            self.errors[name].append(message)


def online_form(service: Service) -> FormDefinition | None:
    """The form new applications of a service use, or None without an online form and flow."""
    form = latest_form(service.id)
    if form is None or latest_flow(service.id) is None:
        return None
    return form


def form_version(service: Service, raw: str | None) -> FormDefinition | None:
    """The form version a page was rendered with (its id), if it belongs to the service."""
    form_id = row_id(raw)
    if form_id is None:
        return None
    form = db.session.get(FormDefinition, form_id)
    return form if form is not None and form.service_id == service.id else None


def start_permissions(flow_definition: Mapping[str, Any], form: FormDefinition) -> dict[str, str]:
    """What the applicant may fill in: the flow's start node decides (approvers' opinion
    fields are usually hidden from the applicant)."""
    flow = parse_flow(flow_definition)
    return field_permissions(flow, flow.nodes[0].id, field_names(form.ui))


def applicant_permissions(service: Service, form: FormDefinition) -> dict[str, str]:
    """``start_permissions`` of the flow new applications of the service start."""
    flow_row = latest_flow(service.id)
    if flow_row is None:
        return {name: "edit" for name in field_names(form.ui)}
    return start_permissions(flow_row.definition, form)


def read_post(
    ui: Mapping[str, Any],
    form: MultiDict[str, str],
    uploads: MultiDict[str, FileStorage],
    user: HallUser,
    permissions: Mapping[str, str],
    application_id: int | None = None,
) -> Posted:
    """Typed data from a post; new files are stored (kept even if the form has errors).

    Only fields the applicant may edit are read. Attachment fields carry the ids of files
    already uploaded and ``<field>-upload`` files; an id the user may not use is dropped with
    a message.
    """
    values = MultiDict(form)
    problems: dict[str, list[str]] = {}
    uploaded = 0
    for name in field_names(ui):
        if widget_of(ui, name) != "attachment" or permissions.get(name) != "edit":
            continue
        ids, refused = attachments.usable_attachments(
            user.account, form.getlist(name), application_id
        )
        messages = problems.setdefault(name, [])
        if refused:
            messages.append(_("有附件无法使用（不存在或不属于您），已移除，请重新上传。"))
        for upload in uploads.getlist(f"{name}-upload"):
            if not upload.filename:
                continue  # the empty file input of a browser that chose nothing
            if uploaded >= attachments.UPLOADS_PER_REQUEST:
                messages.append(
                    _(
                        "一次最多上传%(n)s个文件，“%(name)s”未上传，请再次提交上传。",
                        n=attachments.UPLOADS_PER_REQUEST,
                        name=upload.filename,
                    )
                )
                continue
            uploaded += 1
            try:
                ids.append(
                    attachments.store_upload(user.account, upload.filename, upload.stream).id
                )
            except attachments.UploadRefused as refusal:
                messages.append(str(refusal))
        if len(ids) > attachments.MAX_PER_FIELD:
            messages.append(_("每项最多%(n)s个附件", n=attachments.MAX_PER_FIELD))
        values.setlist(name, [str(i) for i in ids])
    coerced = coerce_form(ui, cast(FormInput, values))
    posted = Posted({k: v for k, v in coerced.items() if permissions.get(k) == "edit"})
    for name, messages in problems.items():
        for message in messages:
            posted.add(name, message)
    return posted


def merge_errors(*groups: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Several error mappings as one, each message once."""
    merged: dict[str, list[str]] = {}
    for group in groups:
        for name, messages in group.items():
            for message in messages:
                if message not in merged.setdefault(name, []):
                    merged[name].append(message)
    return merged


# --------------------------------------------------------------------------- 自选审批人


def approver_choices(
    service: Service,
    chosen: Mapping[str, list[str]] | None = None,
    errors: Mapping[str, list[str]] | None = None,
) -> list[ApproverChoice]:
    """The nodes of the service's flow where the applicant chooses the approvers."""
    flow_row = latest_flow(service.id)
    if flow_row is None:
        return []
    chosen = chosen or {}
    errors = errors or {}
    return [
        ApproverChoice(
            node.id,
            node.name or node.id,
            "，".join(chosen.get(node.id, [])),
            tuple(errors.get(CHOICE_PREFIX + node.id, [])),
        )
        for node in parse_flow(flow_row.definition).approver_nodes()
        if node.approver is not None and node.approver.type == "applicant_choice"
    ]


def read_choices(
    choices: list[ApproverChoice],
    form: MultiDict[str, str],
    *,
    check: bool,
    applicant: str | None = None,
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Chosen approvers by node (学工号 separated by commas or spaces) and problems by field.

    ``check`` (at submission) requires a choice per node, each a person the hall knows other
    than the ``applicant``: nobody approves their own application.
    """
    chosen: dict[str, list[str]] = {}
    errors: dict[str, list[str]] = {}
    for choice in choices:
        raw = form.get(choice.key, "")[:1000]
        accounts = list(dict.fromkeys(a for a in re.split(r"[\s,，、;；]+", raw) if a))
        if accounts:
            chosen[choice.node_id] = accounts[:MAX_CHOSEN]
        if not check:
            continue
        if not accounts:
            errors[choice.key] = [_("请为“%(name)s”选择审批人", name=choice.name)]
            continue
        if len(accounts) > MAX_CHOSEN:
            errors[choice.key] = [_("最多选择%(n)s位审批人", n=MAX_CHOSEN)]
            continue
        if applicant is not None and applicant in accounts:
            # The engine refuses it too; here the message stands beside the field.
            errors[choice.key] = [_("不能选择申请人本人作为“%(name)s”的审批人", name=choice.name)]
            continue
        missing = unknown_people(accounts)
        if missing:
            errors[choice.key] = [missing]
    return chosen, errors


# --------------------------------------------------------------------------- drafts


def drafts_of(account: str) -> list[Draft]:
    """草稿箱: one person's drafts, most recently saved first."""
    return list(
        db.session.scalars(
            select(Draft)
            .where(Draft.owner == account)
            .order_by(Draft.updated_at.desc(), Draft.id.desc())
        )
    )


def find_draft(account: str, draft_id: int) -> Draft | None:
    """One of the person's own drafts (someone else's looks missing)."""
    draft = db.session.get(Draft, draft_id)
    return draft if draft is not None and draft.owner == account else None


def save_draft(
    user: HallUser,
    service: Service,
    form: FormDefinition,
    data: Mapping[str, Any],
    draft: Draft | None = None,
    chosen: Mapping[str, list[str]] | None = None,
) -> Draft:
    """存到我的草稿箱: keep the values as they are (no validation but size limits)."""
    size = len(json.dumps([data, chosen], ensure_ascii=False).encode())
    if size > MAX_DRAFT_BYTES:
        raise SubmissionInvalid({FORM_ERROR: [_("草稿内容过多，无法保存，请精简后再试。")]})
    if draft is None:
        count = db.session.scalar(select(func.count()).where(Draft.owner == user.account)) or 0
        if count >= MAX_DRAFTS:
            raise SubmissionInvalid(
                {FORM_ERROR: [_("草稿箱已满（最多%(n)s份），请先删除不需要的草稿。", n=MAX_DRAFTS)]}
            )
        draft = Draft(
            owner=user.account, service_id=service.id, form_definition_id=form.id, data={}
        )
        db.session.add(draft)
    draft.data = dict(data)
    draft.chosen = dict(chosen or {})
    draft.updated_at = utcnow()
    db.session.commit()
    return draft


def delete_draft(draft: Draft) -> None:
    """Remove a draft and the files only it held (another draft of the owner may hold some)."""
    kept: set[int] = set()
    for other in drafts_of(draft.owner):
        if other.id != draft.id:
            kept.update(attachments.attachment_ids(other.form_definition.ui, other.data))
    ids = attachments.attachment_ids(draft.form_definition.ui, draft.data)
    attachments.delete_unsubmitted([i for i in ids if i not in kept], draft.owner)
    db.session.delete(draft)
    db.session.commit()


# --------------------------------------------------------------------------- one submission a page


@dataclass(frozen=True)
class SubmissionClaim:
    """The right to submit a form page once (``key`` None: a page without a submission id)."""

    key: str | None
    #: The application an earlier post of the same page created.
    earlier: int | None = None
    #: An earlier post of the same page is still being processed.
    busy: bool = False


def submission_id(raw: str | None, draft: Draft | None = None) -> str:
    """The id a form page is submitted under: the draft's (shared by every tab showing it),
    else the one the page already carried, else a new random one."""
    if draft is not None:
        created = draft.created_at.replace(tzinfo=None)
        return f"draft-{draft.id}-{created:%Y%m%d%H%M%S%f}"
    text = str(raw or "")
    return text if _SUBMISSION_ID.fullmatch(text) else secrets.token_urlsafe(18)


def _submission_key(account: str, raw: str | None) -> str | None:
    text = str(raw or "")
    return f"form-submission:{account}:{text}" if _SUBMISSION_ID.fullmatch(text) else None


def claim_submission(account: str, raw: str | None) -> SubmissionClaim:
    """Claim a page's one submission, or learn what an earlier post of it did.

    The store decides between two posts at once; the later waits up to ``SUBMISSION_WAIT``
    for the earlier one's application.
    """
    key = _submission_key(account, raw)
    if key is None:
        return SubmissionClaim(None)
    store = get_store()
    deadline = time.monotonic() + SUBMISSION_WAIT
    while True:
        if store.add(key, _SUBMISSION_PENDING, SUBMISSION_PENDING_TTL):
            return SubmissionClaim(key)
        value = store.get(key)
        if value is not None and value != _SUBMISSION_PENDING:
            return SubmissionClaim(key, earlier=row_id(value))
        if value is not None and time.monotonic() >= deadline:
            return SubmissionClaim(key, busy=True)
        if value is not None:
            time.sleep(0.1)


def finish_submission(claim: SubmissionClaim, application: Application | None) -> None:
    """Remember the application a claimed page created; without one the page may be posted
    again (its errors fixed)."""
    if claim.key is None or claim.earlier is not None or claim.busy:
        return
    store = get_store()
    if application is None:
        store.delete(claim.key)
    else:
        store.set(claim.key, str(application.id), SUBMISSION_TTL)


def page_draft(account: str, raw: str | None) -> Draft | None:
    """The draft a new form page was already saved as (存到我的草稿箱 clicked twice, or again
    after the browser's Back button), so saving it again updates that draft."""
    key = _submission_key(account, raw)
    found = row_id(get_store().get(f"{key}:draft")) if key is not None else None
    return find_draft(account, found) if found is not None else None


def remember_page_draft(account: str, raw: str | None, draft: Draft) -> None:
    """Note which draft a new form page was saved as (see ``page_draft``)."""
    key = _submission_key(account, raw)
    if key is not None:
        get_store().set(f"{key}:draft", str(draft.id), SUBMISSION_TTL)


# --------------------------------------------------------------------------- submission


def submit_form(
    service: Service,
    user: HallUser,
    form: FormDefinition,
    data: Mapping[str, Any],
    draft: Draft | None = None,
    chosen: Mapping[str, list[str]] | None = None,
) -> Application:
    """Submit with the form version the applicant started with; the draft goes away.

    Raises ``SubmissionInvalid`` with every error by field.
    """

    def finish(application: Application) -> None:
        attachments.link_to_application(
            attachments.attachment_ids(form.ui, application.data), user.account, application.id
        )
        if draft is not None:
            db.session.delete(draft)

    return submit_application(service, user, data, chosen=chosen, form=form, before_commit=finish)


def may_resubmit(application: Application, user: HallUser) -> bool:
    """Only the applicant, and only while the application is returned to them (退回)."""
    return (
        application.applicant == user.account
        and application.status == engine.ApplicationStatus.RETURNED.value
    )


def resubmit(application: Application, user: HallUser, posted: Mapping[str, Any]) -> None:
    """重新提交 a returned application with edited data (checked like a first submission)."""
    form = application.form_definition
    data = resubmit_data(application, user, posted)
    # New files join the application before the action (act commits on its own).
    attachments.link_to_application(
        attachments.attachment_ids(form.ui, data), user.account, application.id
    )
    db.session.commit()
    result = act(application.id, engine.Resubmit(actor=user.account, data=data))
    if isinstance(result, engine.Refusal):
        raise SubmissionInvalid({FORM_ERROR: [_(result.message, **result.params)]})
