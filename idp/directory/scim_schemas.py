"""What ``/scim/v2`` says about itself (RFC 7643 §5–7): ServiceProviderConfig, ResourceTypes
and Schemas. Every attribute is read-only: the directory is kept by HR imports, not by SCIM."""

from __future__ import annotations

from typing import Any

from idp.directory.scim import (
    CAMPUS_GROUP_SCHEMA,
    CAMPUS_USER_SCHEMA,
    ENTERPRISE_SCHEMA,
    GROUP_SCHEMA,
    MAX_COUNT,
    USER_SCHEMA,
    base_url,
)

_SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
_RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
_CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"


def _attribute(
    name: str,
    description: str,
    type_: str = "string",
    *,
    multi: bool = False,
    sub: list[dict[str, Any]] | None = None,
    case_exact: bool = False,
    uniqueness: str = "none",
    returned: str = "default",
    references: list[str] | None = None,
) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "name": name,
        "type": type_,
        "multiValued": multi,
        "description": description,
        "required": False,
        "caseExact": case_exact,
        "mutability": "readOnly",
        "returned": returned,
        "uniqueness": uniqueness,
    }
    if sub:
        attribute["subAttributes"] = sub
    if references:
        attribute["referenceTypes"] = references
    return attribute


def _group_reference(description: str) -> dict[str, Any]:
    return _attribute(
        "department",
        description,
        "complex",
        sub=[
            _attribute("value", "Group id (dept-<n>)"),
            _attribute("$ref", "Group URI", "reference", references=["Group"]),
            _attribute("externalId", "Department code", case_exact=True),
            _attribute("display", "Department name"),
        ],
    )


def _members(description: str) -> dict[str, Any]:
    return _attribute(
        "members",
        description,
        "complex",
        multi=True,
        sub=[
            _attribute("value", "User id (the OIDC sub)"),
            _attribute("$ref", "User URI", "reference", references=["User"]),
            _attribute("display", "Name"),
            _attribute("type", "Always User"),
        ],
    )


def schemas() -> list[dict[str, Any]]:
    """Every schema the API serves, with its attributes."""
    user = [
        _attribute("userName", "学工号: student or staff number", uniqueness="server"),
        _attribute("name", "Name", "complex", sub=[_attribute("formatted", "Full name (姓名)")]),
        _attribute("displayName", "Full name (姓名)"),
        _attribute("userType", "student, staff or visitor"),
        _attribute("active", "False once the account is disabled", "boolean"),
        _attribute(
            "emails",
            "Security email, only once its owner verified it",
            "complex",
            multi=True,
            sub=[
                _attribute("value", "Address"),
                _attribute("type", "other"),
                _attribute("primary", "Always true", "boolean"),
            ],
        ),
        _attribute(
            "phoneNumbers",
            "Security phone (E.164), only once its owner verified it",
            "complex",
            multi=True,
            sub=[
                _attribute("value", "Number"),
                _attribute("type", "mobile"),
                _attribute("primary", "Always true", "boolean"),
            ],
        ),
        _attribute(
            "groups",
            "The department and positions the person belongs to",
            "complex",
            multi=True,
            sub=[
                _attribute("value", "Group id"),
                _attribute("$ref", "Group URI", "reference", references=["Group"]),
                _attribute("display", "Group name"),
                _attribute("type", "direct"),
            ],
        ),
    ]
    enterprise = [
        _attribute("employeeNumber", "学工号"),
        _attribute("organization", "The university"),
        _attribute("department", "Department name"),
        _attribute(
            "manager",
            "Head of the person's department (or of the nearest one above with a head)",
            "complex",
            sub=[
                _attribute("value", "User id"),
                _attribute("$ref", "User URI", "reference", references=["User"]),
                _attribute("displayName", "Name"),
            ],
        ),
    ]
    campus_user = [
        _attribute("departmentCode", "Department code (HR)", case_exact=True),
        _group_reference("The department as a Group"),
        _attribute("accountStatus", "pending (not yet activated), active, locked or disabled"),
    ]
    group = [
        _attribute("displayName", "Department name or position title"),
        _members("People in the department, or holders of the position"),
    ]
    campus_group = [
        _attribute("kind", "department or position"),
        _attribute("code", "Department code (departments)", case_exact=True),
        _attribute(
            "parent",
            "Parent department (departments)",
            "complex",
            sub=_group_reference("")["subAttributes"],
        ),
        _attribute("positionKind", "head, deputy_head, secretary or counsellor (positions)"),
        _group_reference("The department the position belongs to (positions)"),
    ]
    documents = [
        (USER_SCHEMA, "User", "A person with a campus account", user),
        (ENTERPRISE_SCHEMA, "EnterpriseUser", "Enterprise User (RFC 7643 §4.3)", enterprise),
        (CAMPUS_USER_SCHEMA, "CampusUser", "Hongliu campus attributes of a User", campus_user),
        (GROUP_SCHEMA, "Group", "A department or a position", group),
        (CAMPUS_GROUP_SCHEMA, "CampusGroup", "Hongliu campus attributes of a Group", campus_group),
    ]
    return [
        {
            "schemas": [_SCHEMA_SCHEMA],
            "id": urn,
            "name": name,
            "description": description,
            "attributes": attributes,
            "meta": {"resourceType": "Schema", "location": f"{base_url()}/Schemas/{urn}"},
        }
        for urn, name, description, attributes in documents
    ]


def resource_types() -> list[dict[str, Any]]:
    """The User and Group resource types."""
    return [
        {
            "schemas": [_RESOURCE_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "People (students, staff, visitors)",
            "schema": USER_SCHEMA,
            "schemaExtensions": [
                {"schema": ENTERPRISE_SCHEMA, "required": True},
                {"schema": CAMPUS_USER_SCHEMA, "required": True},
            ],
            "meta": {
                "resourceType": "ResourceType",
                "location": f"{base_url()}/ResourceTypes/User",
            },
        },
        {
            "schemas": [_RESOURCE_TYPE_SCHEMA],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "Departments (dept-<n>) and positions (pos-<n>)",
            "schema": GROUP_SCHEMA,
            "schemaExtensions": [{"schema": CAMPUS_GROUP_SCHEMA, "required": True}],
            "meta": {
                "resourceType": "ResourceType",
                "location": f"{base_url()}/ResourceTypes/Group",
            },
        },
    ]


def service_provider_config() -> dict[str, Any]:
    """What the API supports: filtering and paging, nothing that writes."""
    return {
        "schemas": [_CONFIG_SCHEMA],
        "documentationUri": f"{base_url().rsplit('/scim/', 1)[0]}/",
        "patch": {"supported": False},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_COUNT},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": (
                    "A client-credentials access token with scope directory.read from the "
                    "token endpoint of /.well-known/openid-configuration"
                ),
                "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base_url()}/ServiceProviderConfig",
        },
    }
