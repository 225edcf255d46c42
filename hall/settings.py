"""Every setting of the service hall, read from ``HALL_*`` environment variables (see README)."""

from hall.forms.files import DEFAULT_MAX_BYTES, DEFAULT_TYPES, parse_attachment_types
from shared.config import Setting, parse_int, parse_url
from shared.factory import common_settings

SETTINGS = (
    *common_settings("红柳易办"),
    Setting("OIDC_ISSUER", "http://127.0.0.1:5000", parse_url("http", "https"), "the IdP's URL"),
    Setting("OIDC_CLIENT_ID", None, str),
    Setting("OIDC_CLIENT_SECRET", None, str),
    Setting(
        "DIRECTORY_CLIENT_ID",
        None,
        str,
        "the hall's client-credentials registration at the IdP (scope directory.read)",
    ),
    Setting("DIRECTORY_CLIENT_SECRET", None, str),
    Setting(
        "ATTACHMENT_MAX_BYTES",
        DEFAULT_MAX_BYTES,
        parse_int(1024, 2**31 - 1),
        "largest attachment in bytes (10485760 = 10 MB)",
    ),
    Setting(
        "ATTACHMENT_TYPES",
        DEFAULT_TYPES,
        parse_attachment_types,
        "comma-separated extensions, checked against the files' content",
    ),
    Setting("STORAGE_DIR", None, str, "folder for attachments (default instance/attachments)"),
)
