"""What an English-speaking service manager reads in the hall, where the form-fuzzing crawler's
English visitor found Chinese (or would, on the pages of a role it does not visit): messages a
catalogue can only translate when Babel can find them in the source."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_file
from flask import Flask

from hall.forms.attachments import UploadRefused, allowed_types, store_upload, with_links
from hall.forms.rendering import FieldView
from hall.manage import definitions
from hall.workflow.operations import unknown_people
from tests.hall.test_manage_definitions import manager, post, service_id, with_form_and_flow

ROOT = Path(__file__).resolve().parents[2]
#: As ``make messages`` extracts: pybabel's keywords plus ``-k _l``.
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None}


def _extracted(relative: str) -> set[str]:
    """The msgids Babel finds in one source file."""
    found: set[str] = set()
    for _lineno, message, _comments, _context in extract_from_file(
        "python", str(ROOT / relative), keywords=KEYWORDS
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_json_parse_reasons_are_extracted_for_the_catalogue(demo_hall: Flask) -> None:
    """The reasons the definition editor gives for JSON it cannot read (此处缺少逗号) are
    translated with ``_()`` when shown; each must also be written where Babel extracts it, or
    ``make messages`` never puts it in the catalogue and English readers see Chinese."""
    with demo_hall.test_request_context():  # Chinese: each reason reads as its msgid
        reasons = {str(reason) for _english, reason in definitions._JSON_REASONS}
    missing = reasons - _extracted("hall/manage/definitions.py")
    assert not missing, missing


def test_an_english_manager_reads_the_json_reason_in_english(demo_hall: Flask) -> None:
    """A missing comma in the flow editor, read in English: the whole message is English,
    the reason (此处缺少逗号) included."""
    sid = service_id(demo_hall)
    with_form_and_flow(demo_hall, sid)
    client = manager(demo_hall)
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    status, page = post(client, sid, "flow", '{\n  "nodes": []\n  "settings": {}\n}')
    assert status == 400 and 'lang="en"' in page
    assert "Invalid JSON at line 3, column 3: a comma is missing here." in page
    assert "此处缺少逗号" not in page


def test_lists_in_english_messages_are_separated_by_commas(hall_app: Flask) -> None:
    """A list inside an English message (the file types an upload may have, the unknown
    accounts of a pass-on) is separated as English is (", "), not by the Chinese 、."""
    with hall_app.test_request_context(headers={"Accept-Language": "en"}):
        types = ", ".join(allowed_types())
        with pytest.raises(UploadRefused) as refused:
            store_upload("2024000001", "virus.exe", BytesIO(b"MZ"))
        assert str(refused.value) == (
            f"“virus.exe” is a file type that cannot be uploaded; allowed: {types}."
        )
        unknown = unknown_people(["X0001", "X0002"])
        assert unknown == "No one found with the staff or student number X0001, X0002"
        # An attachment field's own help and the upload limits, as one help text.
        field = FieldView("proof", "Proof", "attachment", [], editable=True, help="Scan it")
        (shown,) = with_links([field])
        assert shown.help.startswith("Scan it; Each file up to "), shown.help
