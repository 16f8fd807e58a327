"""Staff accounts of a clinic."""

import uuid

import sqlalchemy as sa
from flask_babel import gettext as _

from core import sessions
from core import validation as check
from core.auth import LoginFailed, check_password, hash_password
from core.clinic import audit
from core.clinic.models import Role, SecretaryPractitioner, User
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


def works_for(user: User) -> frozenset[uuid.UUID] | None:
    """The practitioners whose patients' requests ``user`` handles: for a secretary the
    admins gave practitioners to, their ids; None for everyone else (a secretary without
    any works for the whole clinic, as admins do)."""
    if user.role != Role.SECRETARY:
        return None
    found = frozenset(
        db.session.scalars(
            sa.select(SecretaryPractitioner.practitioner_id).where(
                SecretaryPractitioner.secretary_id == user.id
            )
        )
    )
    return found or None


def assignments() -> dict[uuid.UUID, set[uuid.UUID]]:
    """Every secretary's practitioners, by secretary id (for the staff page), in one query."""
    found: dict[uuid.UUID, set[uuid.UUID]] = {}
    for secretary_id, practitioner_id in db.session.execute(
        sa.select(SecretaryPractitioner.secretary_id, SecretaryPractitioner.practitioner_id)
    ):
        found.setdefault(secretary_id, set()).add(practitioner_id)
    return found


def set_works_for(secretary: User, practitioner_ids) -> None:
    """Say which practitioners ``secretary`` works for (none: all of them), replacing what
    was said before, in one transaction.

    :raises ValidationError: on ``role`` when the account is not a secretary's, or on
        ``practitioners`` when one of the ids is not an active practitioner of the clinic.
    """
    if secretary.role != Role.SECRETARY:
        raise ValidationError(_("Only a secretary works for chosen practitioners."), "role")
    try:
        wanted = {uuid.UUID(str(i)) for i in practitioner_ids}
    except ValueError:
        raise ValidationError(_("Choose practitioners of the list."), "practitioners") from None
    known = {p.id for p in practitioners()}
    if not wanted <= known:
        raise ValidationError(_("Choose practitioners of the list."), "practitioners")
    db.session.execute(
        sa.delete(SecretaryPractitioner).where(SecretaryPractitioner.secretary_id == secretary.id)
    )
    if wanted:
        db.session.execute(
            sa.insert(SecretaryPractitioner),
            [
                {
                    "tenant_id": secretary.tenant_id,
                    "secretary_id": secretary.id,
                    "practitioner_id": p,
                }
                for p in sorted(wanted)
            ],
        )
    audit.record("user.works_for", secretary.id, f"{len(wanted)} practitioners")


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
