#!/usr/bin/env python3
"""A real SMTP relay for the tests (Debian's python3-aiosmtpd) that wants TLS and a login.

Usage: smtp_relay.py PORT CERT KEY USER PASSWORD (starttls|tls) [REFUSE_ONCE]
- starttls: plain SMTP that refuses everything but EHLO/STARTTLS/QUIT before STARTTLS, and
  AUTH (PLAIN, LOGIN) before MAIL;
- tls: TLS from the first byte (SMTPS), AUTH before MAIL;
- REFUSE_ONCE: an address whose first RCPT TO gets a temporary failure (451), as a relay
  that is briefly unable to take mail for a domain answers; later ones are accepted.
Prints READY once listening, then for each message: SESSION tls=<bool> auth=<user>, the
envelope (FROM, TO), the message, and END MESSAGE; and REFUSED <address> for the refusal.
"""
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, cert, key, user, password, mode = sys.argv[1:7]
refuse_once = sys.argv[7] if len(sys.argv) > 7 else None


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        global refuse_once
        if refuse_once is not None and address.lower() == refuse_once.lower():
            refuse_once = None
            print(f"REFUSED {address}", flush=True)
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        login = session.login_data.decode() if session.authenticated and session.login_data else None
        print(f"SESSION tls={session.ssl is not None} auth={login}", flush=True)
        print(f"FROM {envelope.mail_from} TO {' '.join(envelope.rcpt_tos)}", flush=True)
        print(envelope.content.decode("utf-8", "replace"), flush=True)
        print("END MESSAGE", flush=True)
        return "250 Message accepted"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == user.encode() and auth_data.password == password.encode())
    if not ok:
        print(f"AUTH REFUSED {mechanism}", flush=True)
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
common = dict(hostname="127.0.0.1", port=int(port), authenticator=authenticate, auth_required=True)
if mode == "starttls":
    c = Controller(Handler(), tls_context=ctx, require_starttls=True, auth_require_tls=True, **common)
else:
    # (aiosmtpd counts only STARTTLS as TLS for AUTH; this whole connection is TLS)
    c = Controller(Handler(), ssl_context=ctx, auth_require_tls=False, **common)
c.start()
print("READY", flush=True)
while True:
    time.sleep(3600)
