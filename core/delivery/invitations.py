"""Invitations: how a clinic's first admin gets their account, from the operator.

The operator invites a name and an e-mail address; the invitation leaves by e-mail through the
outbox (to the address: no patient record), in the clinic's language. Its link, on the clinic's
subdomain, is signed with the app's secret key for that clinic (another clinic's link does not
verify), expires after ``INVITATION_HOURS``, and sets a password once. A clinic holds one
invitation: a new one replaces the link of the one before. Only a digest of the link's nonce
is stored; the message is confidential (staff pages hide it) and the link is never logged.
"""

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.dialects import postgresql, sqlite

from core.clinic import audit, staff
from core.clinic.models import Role, StaffInvitation, User
from core.db import db, utcnow
from core.delivery import outbox
from core.errors import Conflict, NotFound, ValidationError
from tenants.scoping import tenant_scope

CHANNELS = ("email",)


def max_age() -> timedelta:
    return timedelta(hours=current_app.config["INVITATION_HOURS"])


def _serializer(tenant) -> URLSafeTimedSerializer:
    # The clinic is in the salt: a link signed for one clinic is no link on another.
    return URLSafeTimedSerializer(current_app.secret_key, salt=f"relais.invitation.{tenant.id}")


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def language(tenant) -> str:
    """The language the invitation is written in: the clinic's, when offered."""
    wanted = tenant.default_language
    offered = current_app.config["LANGUAGES"]
    return wanted if wanted in offered else current_app.config["BABEL_DEFAULT_LOCALE"]


def invite(
    tenant, email: str, name: str, by: str = "operator", phone: str | None = None
) -> StaffInvitation:
    """Invite ``name`` at ``email`` to become the clinic's admin: the e-mail goes to the
    outbox (it leaves after the caller commits) and replaces any earlier invitation's link.
    ``phone`` (E.164, from a sign-up) becomes the account's, still to be proved by a code.

    :raises ValidationError: naming ``email`` or ``name``.
    :raises Conflict: on ``email`` when a staff member of the clinic already uses it.
    """
    email, name = staff.checked_identity(email, name)
    with tenant_scope(tenant.id):
        if db.session.scalar(sa.select(User.id).where(User.email == email)):
            raise Conflict(_("A staff member already uses this e-mail."), "email")
        nonce, now = secrets.token_urlsafe(16), utcnow()
        expires_at = now + max_age()
        token = _serializer(tenant).dumps({"n": nonce})
        link = url_for("invitation.accept", tenant=tenant.slug, token=token, _external=True)
        written_in = language(tenant)
        with force_locale(written_in):
            subject = _("Your administrator account at %(clinic)s", clinic=tenant.name)
            text = _(
                "Hello %(name)s,\n\nYou are invited to manage %(clinic)s on Relais as its "
                "administrator. Choose your password with this link; it works once, within "
                "%(hours)d hours:\n%(link)s\n\nThen log in with your e-mail address %(email)s: "
                "you will set up an authenticator app (and confirm your phone number, if "
                "asked).",
                name=name,
                clinic=tenant.name,
                hours=current_app.config["INVITATION_HOURS"],
                link=link,
                email=email,
            )
        # The texts go in as variables, never as templates: a clinic's name is not Jinja.
        message = outbox.send(
            tenant,
            None,
            "transactional",
            {"text": "{{ text }}", "subject": "{{ subject }}"},
            {"text": text, "subject": subject},
            CHANNELS,
            expires_at=expires_at,
            confidential=True,  # the link sets a password: not for anyone else's eyes
            address=email,
            language=written_in,
        )
        values = {
            "email": email,
            "name": name,
            "nonce_digest": _digest(nonce),
            "sent_at": now,
            "expires_at": expires_at,
            "accepted_at": None,
            "message_id": message.id,
            "phone": phone,
        }
        # One statement: two operators inviting at once leave one invitation, the last.
        dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
        db.session.execute(
            dialect.insert(StaffInvitation)
            .values(tenant_id=tenant.id, **values)
            .on_conflict_do_update(index_elements=["tenant_id"], set_=values)
        )
        audit.record("user.invite", None, email, by=by)
        return invitation_of(tenant)


def invitation_of(tenant) -> StaffInvitation | None:
    """The clinic's latest invitation, if the operator sent one."""
    with tenant_scope(tenant.id):
        return db.session.scalar(
            sa.select(StaffInvitation)
            .where(StaffInvitation.tenant_id == tenant.id)
            .execution_options(populate_existing=True)
        )


def all_invitations() -> dict:
    """Every clinic's latest invitation, by clinic id (for the operator's list of clinics)."""
    return {i.tenant_id: i for i in db.session.scalars(sa.select(StaffInvitation))}


def check_token(tenant, token: str) -> StaffInvitation:
    """The invitation a link opens, without using it (in the clinic's scope).

    :raises NotFound: with a sentence saying whether the link is invalid, expired, replaced
        or used.
    """
    try:
        data = _serializer(tenant).loads(token, max_age=int(max_age().total_seconds()))
        nonce = str(data["n"])
    except SignatureExpired:
        raise NotFound(_expired(), "token") from None
    except (BadSignature, KeyError, TypeError):
        raise NotFound(
            _("This link is not valid. Check that you copied all of it."), "token"
        ) from None
    invitation = invitation_of(tenant)
    if invitation is None or not secrets.compare_digest(invitation.nonce_digest, _digest(nonce)):
        raise NotFound(
            _("This invitation was replaced by a newer one: use the link of the latest e-mail."),
            "token",
        )
    if invitation.accepted_at is not None:
        raise NotFound(_used(), "token")
    if invitation.expires_at <= utcnow():
        raise NotFound(_expired(), "token")
    return invitation


def accept(tenant, token: str, password: str, confirmation: str) -> User:
    """Use a link: the invited person's admin account, with the password they chose. The
    link will not set another (the caller commits; on an error, it rolls back).

    :raises NotFound: invalid, expired, replaced or already used.
    :raises ValidationError: on ``password`` (the rules of every password) or
        ``confirmation`` (not the same).
    """
    invitation = check_token(tenant, token)
    if password != confirmation:
        raise ValidationError(_("The two passwords are not the same."), "confirmation")
    with tenant_scope(tenant.id):
        # Claimed in one statement: the same link used twice at once sets one password.
        claimed = db.session.execute(
            sa.update(StaffInvitation)
            .where(
                StaffInvitation.tenant_id == tenant.id,
                StaffInvitation.nonce_digest == invitation.nonce_digest,
                StaffInvitation.accepted_at.is_(None),
            )
            .values(accepted_at=utcnow())
        ).rowcount
        if claimed != 1:
            raise NotFound(_used(), "token")
        user = staff.create_user(
            invitation.email, invitation.name, Role.ADMIN, password, invitation.phone or ""
        )
        audit.record("user.accept_invitation", user.id, by=f"user:{user.id}")
        return user


def _expired() -> str:
    return _("This invitation has expired. Ask your Relais operator to send a new one.")


def _used() -> str:
    return _("This invitation was already used: log in with your e-mail address and password.")
