"""Forms of the admin sections: client registry, departments, roles, policy, user import."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    HiddenField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from idp.auth.forms import TOO_LONG
from idp.clients.operations import CAS_ATTRIBUTES, ID_TOKEN_ALGS
from idp.directory.roles import Role

KIND_CHOICES = [
    SelectChoice("student", _l("学生")),
    SelectChoice("staff", _l("教职工")),
    SelectChoice("visitor", _l("访客")),
]
ROLE_CHOICES = [
    SelectChoice(Role.ADMIN.value, _l("管理员")),
    SelectChoice(Role.HELPDESK.value, _l("服务台")),
]


#: A select, radio or checkbox value the page did not offer (a tampered form).
NOT_OFFERED = _l("请从列出的选项中选择")
#: The same for checkboxes, naming the values refused.
NOT_OFFERED_VALUES = _l("“%(value)s”不在可选项中")


class MultiCheckboxField(SelectMultipleField):
    """Several choices as checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("invalid_choice_message", NOT_OFFERED_VALUES)
        kwargs.setdefault("invalid_value_message", NOT_OFFERED)
        super().__init__(*args, **kwargs)


def reason_field() -> StringField:
    """Why the admin makes the change (kept in the audit log)."""
    return StringField(
        _l("原因（记入审计日志）"), validators=[Optional(), Length(max=200, message=TOO_LONG)]
    )


class AccessPolicyFields(FlaskForm):
    """Who may sign in to a client: kinds and departments (empty = everyone)."""

    allowed_kinds = MultiCheckboxField(_l("允许的人员类别（不选 = 全部）"), choices=KIND_CHOICES)
    allowed_departments = StringField(
        _l("允许的部门代码（空格分隔，含下级部门；留空 = 全部）"),
        validators=[Optional(), Length(max=2000, message=TOO_LONG)],
    )


class OidcClientForm(AccessPolicyFields):
    """Register or edit an OpenID Connect client."""

    name = StringField(
        _l("名称"), validators=[DataRequired(_l("请填写名称")), Length(max=200, message=TOO_LONG)]
    )
    #: A single-use form token: reloading the page that shows the new secret registers nothing.
    once = HiddenField()
    client_id = StringField(
        _l("客户端 ID（留空自动生成）"), validators=[Optional(), Length(max=64, message=TOO_LONG)]
    )
    public = BooleanField(_l("公开客户端（无密钥，如单页应用或手机应用）"))
    #: Confidential clients only (a public one's is ``none``); the view drops it for those.
    token_endpoint_auth_method = SelectField(
        _l("令牌端点认证方式"),
        choices=[
            SelectChoice("client_secret_basic", _l("client_secret_basic（推荐）")),
            SelectChoice("client_secret_post", "client_secret_post"),
        ],
        default="client_secret_basic",
        invalid_choice_message=NOT_OFFERED,
    )
    grant_types = MultiCheckboxField(
        _l("授权类型"),
        choices=[
            SelectChoice("authorization_code", _l("授权码（用户登录）")),
            SelectChoice("refresh_token", _l("刷新令牌")),
            SelectChoice("client_credentials", _l("客户端凭证（系统对系统，如通讯录接口）")),
        ],
        default=["authorization_code", "refresh_token"],
    )
    redirect_uris = TextAreaField(
        _l("重定向 URI（每行一个，完全一致匹配）"), validators=[Length(max=10000, message=TOO_LONG)]
    )
    post_logout_uris = TextAreaField(
        _l("退出后重定向 URI（每行一个）"), validators=[Length(max=10000, message=TOO_LONG)]
    )
    backchannel_logout_uri = StringField(
        _l("后端通道退出 URI"), validators=[Optional(), Length(max=1000, message=TOO_LONG)]
    )
    scopes = StringField(
        _l("授权范围（空格分隔）"), validators=[Optional(), Length(max=1000, message=TOO_LONG)]
    )
    id_token_alg = SelectField(
        _l("ID 令牌签名算法"),
        choices=[SelectChoice(alg, alg) for alg in ID_TOKEN_ALGS],
        default=ID_TOKEN_ALGS[0],
        invalid_choice_message=NOT_OFFERED,
    )
    first_party = BooleanField(_l("校内自有系统（不显示授权确认页）"))
    reason = reason_field()
    submit = SubmitField(_l("保存"))


class CasServiceForm(AccessPolicyFields):
    """Register or edit a CAS service."""

    name = StringField(
        _l("名称"), validators=[DataRequired(_l("请填写名称")), Length(max=200, message=TOO_LONG)]
    )
    service_pattern = StringField(
        _l("服务地址规则（正则表达式，匹配整个地址）"),
        validators=[DataRequired(_l("请填写服务地址规则")), Length(max=2000, message=TOO_LONG)],
    )
    attributes = MultiCheckboxField(
        _l("发布的属性"), choices=[SelectChoice(name, name) for name in CAS_ATTRIBUTES]
    )
    proxy_allowed = BooleanField(_l("允许代理（proxy ticket）"))
    single_logout = BooleanField(_l("单点退出时通知该服务"), default=True)
    reason = reason_field()
    submit = SubmitField(_l("保存"))


class ReasonForm(FlaskForm):
    """A button with an optional reason: rotate the secret, disable, enable, delete…"""

    reason = reason_field()
    #: A single-use form token, for the buttons that must not act twice (重置密钥).
    once = HiddenField()
    submit = SubmitField(_l("确定"))


class DepartmentForm(FlaskForm):
    """A new department."""

    code = StringField(
        _l("部门代码"),
        validators=[DataRequired(_l("请填写部门代码")), Length(max=64, message=TOO_LONG)],
    )
    name = StringField(
        _l("部门名称"),
        validators=[DataRequired(_l("请填写部门名称")), Length(max=200, message=TOO_LONG)],
    )
    parent_code = StringField(
        _l("上级部门代码（留空 = 顶级）"), validators=[Optional(), Length(max=64, message=TOO_LONG)]
    )
    reason = reason_field()
    submit = SubmitField(_l("新建部门"))


class RenameDepartmentForm(FlaskForm):
    """A department's new name."""

    name = StringField(
        _l("部门名称"),
        validators=[DataRequired(_l("请填写部门名称")), Length(max=200, message=TOO_LONG)],
    )
    reason = reason_field()
    submit = SubmitField(_l("重命名"))


class MoveDepartmentForm(FlaskForm):
    """A department's new parent."""

    parent_code = StringField(
        _l("新的上级部门代码（留空 = 顶级）"),
        validators=[Optional(), Length(max=64, message=TOO_LONG)],
    )
    reason = reason_field()
    submit = SubmitField(_l("移动"))


class GrantRoleForm(FlaskForm):
    """Give someone a console role by account number."""

    account = StringField(
        _l("学工号"),
        validators=[DataRequired(_l("请填写学工号")), Length(max=64, message=TOO_LONG)],
    )
    role = SelectField(_l("角色"), choices=ROLE_CHOICES, invalid_choice_message=NOT_OFFERED)
    reason = reason_field()
    submit = SubmitField(_l("授予"))


class RevokeRoleForm(FlaskForm):
    """Take a console role away."""

    user_id = HiddenField(validators=[DataRequired()])
    role = HiddenField(validators=[DataRequired()])
    reason = reason_field()
    submit = SubmitField(_l("撤销"))


class PolicyForm(FlaskForm):
    """The policy page; its value boxes are read by name from the POLICY_FIELDS list."""

    reason = reason_field()
    submit = SubmitField(_l("保存设置"))


class ImportForm(FlaskForm):
    """A CSV export from the HR or student system."""

    file = FileField(_l("CSV 文件"))
    reason = reason_field()
    submit = SubmitField(_l("导入"))
