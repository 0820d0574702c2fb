"""Passkeys (WebAuthn, SPEC section 9): the ceremonies, checked by py_webauthn.

py_webauthn (PyPI `webauthn`, Duo Labs) does the CBOR, the attestation object, the client
data, the RP ID hash, the flags and the signature; this module never parses any of it by
hand. It keeps what the library leaves to the relying party:

- Challenges: 32 random bytes, kept only as a keyed hash in `webauthn_challenges`, single
  use (claimed by one conditional UPDATE before anything else is checked), 5 minutes, and
  bound to what asked for them: the browser session adding a passkey ("register"), the
  sign-in record waiting at the second step ("mfa"), or, for a passkey sign-in's start,
  a random handle held in the browser's cookie ("login"). A challenge from another sign-in
  or another browser is not found, hence refused.
- The RP ID (`WEBAUTHN_RP_ID`, by default the issuer's host) and the one origin (the
  issuer's), given to the library for every check.
- The signature counter: 0 is what synced passkeys send and is accepted; a counter that is
  not 0 and not above the stored one (a cloned authenticator?) is refused and recorded as
  the security event `passkey_counter_regressed`.

Attestation is `none`. A passkey sign-in needs user verification (it is a complete
sign-in); as the second step after a password it is preferred, not required.
"""
from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update
from webauthn import (generate_authentication_options, generate_registration_options,
                      options_to_json, verify_authentication_response,
                      verify_registration_response)
from webauthn.helpers import (base64url_to_bytes, bytes_to_base64url, parse_client_data_json,
                              parse_authentication_credential_json,
                              parse_registration_credential_json)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (AttestationConveyancePreference,
                                      AuthenticatorSelectionCriteria, AuthenticatorTransport,
                                      PublicKeyCredentialDescriptor, ResidentKeyRequirement,
                                      UserVerificationRequirement)

from ... import clock, security
from ...audit import security_event
from ...errors import AuthserverError
from ...extensions import db
from ..models import Passkey, User, WebAuthnChallenge

log = logging.getLogger(__name__)

CHALLENGE_TTL = 300  # seconds
TIMEOUT_MS = 300_000
MAX_PASSKEYS = 20  # per account


class PasskeyRejected(AuthserverError):
    """The browser's answer does not check out (the page says so; HTTP 400)."""


class PasskeysOff(AuthserverError):
    """Passkeys are not available with this issuer (an IP address)."""


@dataclass(frozen=True)
class Assertion:
    """A verified passkey use."""

    user: User
    passkey: Passkey
    user_verified: bool
    backed_up: bool

    def amr(self) -> list[str]:
        """RFC 8176: a key held in hardware (hwk) or synced between devices (swk), plus
        the user verification (user) that makes it two factors (mfa)."""
        key = "swk" if self.backed_up else "hwk"
        return [key, "user", "mfa"] if self.user_verified else [key, "mfa"]


def startup_notice(app) -> None:
    """Say in the server's start-up log why passkeys are off (an IP-address issuer)."""
    if app.config["PASSKEYS_DISABLED_REASON"]:
        log.warning(app.config["PASSKEYS_DISABLED_REASON"])


def enabled() -> bool:
    return not current_app.config["PASSKEYS_DISABLED_REASON"]


def _sentence(name: str) -> str:
    """The organisation's name with its first letter in capitals, the rest as configured."""
    return name[:1].upper() + name[1:]


def _rp() -> tuple[str, str]:
    if not enabled():
        raise PasskeysOff("Passkeys are not available on this server.")
    return current_app.config["WEBAUTHN_RP_ID"], current_app.config["WEBAUTHN_ORIGIN"]


def _challenge_hash(challenge: bytes) -> str:
    return security.keyed_hash(bytes_to_base64url(challenge), "webauthn-challenge")


def _new_challenge(purpose: str, binding: str, user_id: int | None) -> bytes:
    challenge = secrets.token_bytes(32)
    now = clock.now()
    db.session.add(WebAuthnChallenge(challenge_hash=_challenge_hash(challenge), purpose=purpose,
                                     binding=binding, user_id=user_id, created_at=now,
                                     expires_at=now + timedelta(seconds=CHALLENGE_TTL)))
    return challenge


def _claim(client_data_json: bytes, purpose: str, binding: str) -> bytes:
    """The challenge in the client data, if it is ours, unused, live and bound to `binding`;
    it is spent here (committed) whatever follows."""
    try:
        challenge = parse_client_data_json(client_data_json).challenge
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise PasskeyRejected("The passkey's answer could not be read.") from exc
    now = clock.now()
    won = db.session.execute(
        update(WebAuthnChallenge).where(
            WebAuthnChallenge.challenge_hash == _challenge_hash(challenge),
            WebAuthnChallenge.purpose == purpose, WebAuthnChallenge.binding == binding,
            WebAuthnChallenge.used_at.is_(None), WebAuthnChallenge.expires_at > now)
        .values(used_at=now).execution_options(synchronize_session=False)).rowcount == 1
    db.session.commit()
    if not won:
        raise PasskeyRejected("This passkey request has expired or was already used. "
                              "Try again.")
    return challenge


def _descriptors(passkeys) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id),
                                          transports=_transports(p.transports))
            for p in passkeys]


def _transports(values) -> list:
    known = {t.value for t in AuthenticatorTransport}
    return [AuthenticatorTransport(v) for v in values or () if v in known]


def user_passkeys(user: User, *, second_step: bool | None = None) -> list[Passkey]:
    query = select(Passkey).where(Passkey.user_id == user.id)
    if second_step is not None:
        query = query.where(Passkey.second_step.is_(second_step))
    return list(db.session.scalars(query.order_by(Passkey.created_at, Passkey.id)))


# --- adding a passkey ------------------------------------------------------------------------

def registration_options(user: User, binding: str) -> dict:
    """Options for navigator.credentials.create(); the challenge is kept. Commits."""
    rp_id, _ = _rp()
    challenge = _new_challenge("register", binding, user.id)
    options = generate_registration_options(
        rp_id=rp_id, rp_name=_sentence(str(current_app.config["ORGANISATION_NAME"])),
        user_name=user.username, user_id=user.sub.encode(),
        user_display_name=user.name or user.username, challenge=challenge,
        timeout=TIMEOUT_MS, attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=_descriptors(user_passkeys(user)))
    db.session.commit()
    return json.loads(options_to_json(options))


def verify_registration(user: User, binding: str, credential: dict) -> dict:
    """Check a navigator.credentials.create() answer; returns the new passkey's fields (the
    caller stores it). Raises PasskeyRejected."""
    rp_id, origin = _rp()
    try:
        parsed = parse_registration_credential_json(credential)
    except (WebAuthnException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PasskeyRejected("The passkey's answer could not be read.") from exc
    challenge = _claim(parsed.response.client_data_json, "register", binding)
    try:
        verified = verify_registration_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp_id,
            expected_origin=origin, require_user_verification=True)
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise PasskeyRejected("The passkey could not be checked. Try again.") from exc
    transports = [t.value for t in (parsed.response.transports or [])]
    return {"credential_id": bytes_to_base64url(verified.credential_id),
            "public_key": verified.credential_public_key, "sign_count": verified.sign_count,
            "transports": transports, "backed_up": bool(verified.credential_backed_up)}


# --- using a passkey ---------------------------------------------------------------------------

def login_options(binding: str) -> dict:
    """Options for a passkey sign-in (any passkey of this RP: discoverable credentials,
    user verification required). Commits."""
    rp_id, _ = _rp()
    challenge = _new_challenge("login", binding, None)
    options = generate_authentication_options(
        rp_id=rp_id, challenge=challenge, timeout=TIMEOUT_MS,
        user_verification=UserVerificationRequirement.REQUIRED)
    db.session.commit()
    return json.loads(options_to_json(options))


def second_step_options(user: User, binding: str) -> dict:
    """Options for the second step: this user's second-step passkeys, UV preferred. Commits."""
    rp_id, _ = _rp()
    challenge = _new_challenge("mfa", binding, user.id)
    options = generate_authentication_options(
        rp_id=rp_id, challenge=challenge, timeout=TIMEOUT_MS,
        allow_credentials=_descriptors(user_passkeys(user, second_step=True)),
        user_verification=UserVerificationRequirement.PREFERRED)
    db.session.commit()
    return json.loads(options_to_json(options))


def verify_assertion(credential: dict, purpose: str, binding: str,
                     user: User | None = None) -> Assertion:
    """Check a navigator.credentials.get() answer for `purpose` ("login": any account, user
    verification required; "mfa": one of `user`'s second-step passkeys). Updates the
    counter and last use. Commits. Raises PasskeyRejected."""
    rp_id, origin = _rp()
    try:
        parsed = parse_authentication_credential_json(credential)
    except (WebAuthnException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PasskeyRejected("The passkey's answer could not be read.") from exc
    challenge = _claim(parsed.response.client_data_json, purpose, binding)
    passkey = db.session.scalar(select(Passkey).where(
        Passkey.credential_id == bytes_to_base64url(parsed.raw_id)))
    if passkey is None or (user is not None and passkey.user_id != user.id) \
            or (purpose == "mfa" and not passkey.second_step):
        raise PasskeyRejected("This passkey is not registered here. It may have been removed: "
                              "sign in another way, or delete it from your device.")
    handle = parsed.response.user_handle
    owner = db.session.get(User, passkey.user_id)
    if handle and handle != owner.sub.encode():
        raise PasskeyRejected("This passkey does not belong to the account it names.")
    try:
        verified = verify_authentication_response(
            credential=parsed, expected_challenge=challenge, expected_rp_id=rp_id,
            expected_origin=origin, credential_public_key=passkey.public_key,
            credential_current_sign_count=0,  # the counter rule is ours, below
            require_user_verification=purpose == "login")
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise PasskeyRejected("The passkey could not be checked. Try again.") from exc
    _check_counter(passkey, verified.new_sign_count)
    passkey.last_used_at = clock.now()
    passkey.backed_up = bool(verified.credential_backed_up)
    db.session.commit()
    return Assertion(owner, passkey, bool(verified.user_verified),
                     bool(verified.credential_backed_up))


def _check_counter(passkey: Passkey, new: int) -> None:
    """0 means the authenticator keeps no counter (synced passkeys): accepted. Otherwise the
    counter must go up; one that does not is refused and recorded."""
    old = passkey.sign_count or 0
    if new == 0:
        return
    if new <= old:
        security_event("passkey_counter_regressed", user_id=passkey.user_id,
                       passkey_id=passkey.id, stored=old, received=new)
        db.session.commit()
        raise PasskeyRejected("This passkey's use counter did not go up, which can mean it "
                              "was copied. It was not accepted; contact your administrator.")
    passkey.sign_count = new
