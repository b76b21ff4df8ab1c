"""An SMTP client for the tests that prove behaviour on the wire: what the daemon answers to a
recipient, from a chosen loopback source address (127.0.0.1 is a relay client of the embedded
instance's access map; another 127.0.0.x is a stranger)."""

from __future__ import annotations

import smtplib

STRANGER = "127.0.0.3"


def rcpt_reply(
    server, recipient: str, *, source: str = STRANGER, sender: str = "alice@client.example"
) -> tuple[int, str]:
    """(code, text) of the daemon's reply to RCPT TO:<recipient> from `source`; nothing is sent."""
    with smtplib.SMTP(server.smtp_address, server.smtp_port, timeout=30, source_address=(source, 0)) as smtp:
        smtp.ehlo("client.example")
        code, text = smtp.mail(sender)
        assert code == 250, (code, text)
        code, text = smtp.rcpt(recipient)
        smtp.rset()
    return code, text.decode(errors="replace")
