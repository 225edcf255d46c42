"""Helpers of the directory and import tests: CSV files as HR exports them, legacy hashes."""

from __future__ import annotations

import base64
import hashlib

from idp.directory.models import User
from idp.directory.operations import find_user_by_account
from idp.extensions import db

HEADER = "account,name,kind,department,id_number,phone,email,legacy_hash"


def csv_bytes(*rows: str, header: str = HEADER, encoding: str = "utf-8") -> bytes:
    """A CSV file's bytes with the given header and rows."""
    return ("\r\n".join([header, *rows]) + "\r\n").encode(encoding)


def ssha(password: str, salt: bytes = b"salt1234") -> str:
    """An OpenLDAP ``{SSHA}`` value, as the old unified-auth directory stored them."""
    digest = hashlib.sha1(password.encode() + salt).digest()  # SHA-1: the legacy format itself
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def user(account: str) -> User:
    """The account, freshly loaded."""
    db.session.expire_all()
    found = find_user_by_account(account)
    assert found is not None
    return found
