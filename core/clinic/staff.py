"""Staff accounts of a clinic."""

import uuid

import sqlalchemy as sa
from flask_babel import gettext as _

from core import validation as check
from core.auth import hash_password
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
        email=email, name=name, role=role, phone=phone, password_hash=hash_password(password)
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
    audit.record("user.activate" if active else "user.deactivate", user.id)
