"""Mail delivery over SMTP, and the development outbox for mail.

A :class:`MailSender` may write to the outbox, send through an SMTP server, or both. Encryption
is never downgraded silently: ``starttls`` fails when the server does not offer STARTTLS, and
certificates are always verified (``ca_file`` adds a private CA, e.g. a campus one).
"""

from __future__ import annotations

import os
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from shared.messaging.outbox import MAIL_FILE, append_record, utc_timestamp

SECURITY_MODES = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}


class MailError(Exception):
    """A mail was not sent; the message is safe to log (it never holds the SMTP password)."""


@dataclass(frozen=True)
class MailMessage:
    """One plain-text mail to one recipient; ``code`` is recorded by the outbox only."""

    to: str
    subject: str
    text: str
    code: str | None = None


class MailSender:
    """Sends :class:`MailMessage` through SMTP and/or appends it to ``<outbox_dir>/mail.jsonl``."""

    def __init__(
        self,
        *,
        server: str | None,
        port: int | None = None,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        sender: str,
        outbox_dir: str | os.PathLike[str] | None = None,
        ca_file: str | None = None,
        timeout: float = 10,
    ) -> None:
        if security not in SECURITY_MODES:
            raise ValueError(
                f"unknown mail security {security!r}; expected one of {', '.join(SECURITY_MODES)}"
            )
        self.server = server or None
        self.security = security
        self.port = port or DEFAULT_PORTS[security]
        self.username = username or None
        self._password = password or ""
        self.sender = sender
        self.outbox_dir = outbox_dir
        self.ca_file = ca_file or None
        self.timeout = timeout
        # Message-IDs carry the sender's domain; make_msgid() would otherwise look up this
        # host's FQDN, which can stall on a machine with slow DNS.
        self._msgid_domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"

    def send(self, message: MailMessage) -> None:
        """Write the outbox and/or deliver over SMTP; raise :class:`MailError` on failure."""
        if self.server is None and self.outbox_dir is None:
            raise MailError("no mail server configured")
        email = self._compose(message)
        if self.outbox_dir is not None:
            record = {
                "to": message.to,
                "subject": message.subject,
                "text": message.text,
                "code": message.code,
                "at": utc_timestamp(),
            }
            try:
                append_record(self.outbox_dir, MAIL_FILE, record)
            except OSError as exc:
                raise MailError(
                    f"could not write the mail outbox in {self.outbox_dir}: {exc}"
                ) from None
        if self.server is not None:
            self._deliver(self.server, email)

    def _compose(self, message: MailMessage) -> EmailMessage:
        email = EmailMessage()
        try:
            email["From"] = self.sender
            email["To"] = message.to
            email["Subject"] = message.subject
            email["Date"] = format_datetime(datetime.now(UTC))
            email["Message-ID"] = make_msgid(domain=self._msgid_domain)
        except ValueError as exc:
            # The email package refuses line breaks in headers: header injection stops here.
            raise MailError(f"invalid mail header: {exc}") from None
        email.set_content(message.text, charset="utf-8")
        return email

    def _deliver(self, server: str, email: EmailMessage) -> None:
        where = f"{server}:{self.port}"
        try:
            context = (
                ssl.create_default_context(cafile=self.ca_file) if self.security != "none" else None
            )
            client: smtplib.SMTP
            if self.security == "ssl":
                client = smtplib.SMTP_SSL(server, self.port, timeout=self.timeout, context=context)
            else:
                client = smtplib.SMTP(server, self.port, timeout=self.timeout)
            with client:
                if self.security == "starttls":
                    client.ehlo()
                    if not client.has_extn("starttls"):
                        raise MailError(
                            f"mail server {where} does not offer STARTTLS; refusing to send in "
                            "plain text (use security 'ssl', or 'none' only for a local relay)"
                        )
                    client.starttls(context=context)
                    client.ehlo()
                if self.username:
                    client.login(self.username, self._password)
                client.send_message(email)
        except MailError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise MailError(
                f"mail server {where} refused the login of {self.username!r}: "
                f"{exc.smtp_code} {self._safe(exc.smtp_error)}"
            ) from None
        except UnicodeError:
            # smtplib encodes AUTH credentials and envelope addresses as ASCII.
            raise MailError(
                f"could not send mail via {where}: the user name, password and addresses must "
                "be ASCII"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            # ssl.SSLError (certificate failures), timeouts and refused connections are OSErrors.
            raise MailError(
                f"could not send mail via {where}: {type(exc).__name__}: {self._safe(exc)}"
            ) from None

    def _safe(self, detail: object) -> str:
        """Server text for a log line, decoded and with the password masked, just in case."""
        text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        if self._password:
            text = text.replace(self._password, "***")
        return text[:300]
