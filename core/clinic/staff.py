"""Staff accounts of a clinic."""

import uuid

import sqlalchemy as sa
from flask_babel import gettext as _

from core import sessions
from core import validation as check
from core.auth import LoginFailed, check_password, hash_password
from core.clinic import audit
from core.clinic.models import Role, User
from core.db import db
from core.errors import Conflict, NotFound, ValidationError
from tenants.models import Tenant
from tenants.scoping import current_tenant_id


def role_labels() -> dict[str, str]:
    """The words staff read for each role."""
    return {
        Role.ADMIN: _("Administrator"),
        Role.PRACTITIONER: _("Practitioner"),
        Role.SECRETARY: _("Secretary"),
    }


def checked_identity(email: str, name: str) -> tuple[str, str]:
    """A staff member's e-mail address and name, both required, as accounts store them.
    :raises ValidationError: naming ``email`` or ``name``."""
    # Lower-cased whole: the login form lower-cases what is typed before looking it up.
    email = (check.email(email) or "").lower()
    if not email:
        raise ValidationError(_("This field is required."), "email")
    name = check.text(name, "name", 200)
    if not name:
        raise ValidationError(_("This field is required."), "name")
    return email, name


def create_user(email: str, name: str, role: str, password: str, phone: str = "") -> User:
    """Create a staff account in the current clinic; it enrols its authenticator app at
    first login (after the steps a clinic's plugins add, such as proving its ``phone``).
    :raises ValidationError, Conflict: naming the field."""
    email, name = checked_identity(email, name)
    try:
        role = Role(role)
    except ValueError:
        raise ValidationError(_("Choose a role."), "role") from None
    if db.session.scalar(sa.select(User.id).where(User.email == email)):
        raise Conflict(_("A staff member already uses this e-mail."), "email")
    phone = check.phone(phone, db.session.get(Tenant, current_tenant_id()).country_code)
    user = User(
        email=email,
        name=name,
        role=role,
        phone=phone,
        password_hash=hash_password(password, (email, name)),
    )
    db.session.add(user)
    db.session.flush()
    audit.record("user.create", user.id)
    return user


def list_users() -> list[User]:
    return list(db.session.scalars(sa.select(User).order_by(User.name)))


def practitioners() -> list[User]:
    """The clinic's active practitioners, by name."""
    return list(
        db.session.scalars(
            sa.select(User).where(User.role == Role.PRACTITIONER, User.active).order_by(User.name)
        )
    )


def find_user(user_id: uuid.UUID) -> User:
    user = db.session.scalar(sa.select(User).where(User.id == user_id))
    if user is None:
        raise NotFound(_("No such staff member."))
    return user


def set_active(user: User, active: bool, by: User) -> None:
    """Deactivate (or reactivate) an account; nobody deactivates themselves."""
    if user.id == by.id and not active:
        raise ValidationError(_("You cannot deactivate your own account."), "active")
    user.active = active
    if not active:
        sessions.end_all(realm_of(user), user.id)
    audit.record("user.activate" if active else "user.deactivate", user.id)


def realm_of(user: User) -> str:
    """The realm staff sessions of ``user``'s clinic are opened in (see core.web.auth)."""
    return str(user.tenant_id)


def change_password(user: User, current: str, new: str) -> None:
    """Set a new password after checking the current one (a failure counts towards the
    lockout); every session of the account ends, the caller opens a new one.

    :raises ValidationError: on ``password`` (the new one).
    :raises LoginFailed: on ``current_password``, when it is wrong.
    :raises AccountLocked: after too many failed tries (as at login).
    """
    try:
        check_password(realm_of(user), user.email, user, current)
    except LoginFailed:
        raise LoginFailed(_("This is not your current password."), "current_password") from None
    user.password_hash = hash_password(new, (user.email, user.name))
    sessions.end_all(realm_of(user), user.id)
    audit.record("user.password", user.id)


def end_sessions(user: User) -> int:
    """Log ``user`` out everywhere: every session of the account ends at its next request."""
    ended = sessions.end_all(realm_of(user), user.id)
    audit.record("user.sessions_ended", user.id)
    return ended
