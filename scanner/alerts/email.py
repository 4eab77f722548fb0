"""E-mail through an SMTP server (smtplib): one message per change."""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from scanner.alerts.base import Alert, AlertError, StatelessNotifier

TIMEOUT_S = 20.0
SECURITY_MODES = ("starttls", "tls", "none")  # "none": a relay on localhost or the LAN only


class EmailNotifier(StatelessNotifier):
    name = "email"

    def __init__(
        self,
        host: str,
        sender: str,
        recipients: Sequence[str],
        *,
        port: int = 587,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = TIMEOUT_S,
        ca_file: str | None = None,
    ) -> None:
        if security not in SECURITY_MODES:
            raise ValueError(f"email security must be one of {', '.join(SECURITY_MODES)}")
        self.host, self.port, self.security = host, port, security
        self.sender, self.recipients = sender, list(recipients)
        self.username, self.password = username, password
        self.timeout = timeout
        self.ca_file = ca_file  # a private CA for the mail server (on top of the system's)

    def message(self, alert: Alert) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = alert.title
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="exposure.invalid")
        message["X-Exposure-Severity"] = str(alert.severity)
        message["X-Exposure-Change"] = str(alert.change.kind)
        body = "\n".join([
            alert.message,
            "",
            f"scan {alert.scan.id} ({alert.scan.started_at})",
            "",
            "-- ",
            "exposure: what the internet sees of your network.",
        ])
        message.set_content(body)
        message.add_attachment(
            json.dumps(alert.to_dict(), indent=2).encode(),
            maintype="application", subtype="json", filename="change.json",
        )
        return message

    def send(self, alert: Alert) -> None:
        message = self.message(alert)
        try:
            with self._connect() as smtp:
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            raise AlertError(f"smtp {self.host}:{self.port}: {type(error).__name__}: "
                             f"{str(error)[:200]}") from error

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                    context=self._tls_context())
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            try:
                smtp.starttls(context=self._tls_context())
            except BaseException:
                smtp.close()
                raise
        return smtp

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.ca_file:
            context.load_verify_locations(cafile=self.ca_file)
        return context
