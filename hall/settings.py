"""Every setting of the service hall, read from ``HALL_*`` environment variables (see README)."""

from shared.config import Setting, parse_url
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
)
