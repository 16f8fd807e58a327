"""Clinic self-onboarding: a practitioner signs a clinic up on the main domain.

The sign-up creates the clinic (the rules of :func:`tenants.provisioning.create_tenant`) in a
country whose operator opened self sign-up, and invites its first admin with the practitioner's
mobile phone (:mod:`core.delivery.invitations`): the e-mailed link proves the address and sets
the password; the first login proves the phone by a code (the ``relais_activation_step`` of the
otp plugin) and enrols the authenticator app. The clinic runs with the plugins its country's
operator enabled. Abuse limits: a few pending sign-ups per address and per phone (counted under
a lock, so parallel requests cannot pass them together), and a rate per client address (the
view's). A sign-up whose invitation expired unused is removed by the sweeper, which frees its
subdomain (:func:`release_expired_signups`). Operators suspend a clinic (every page and API
call of its subdomain answers 403, its messages and jobs wait) and reactivate it.
"""

import phonenumbers
import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from core import validation as check
from core.clinic import audit, staff
from core.clinic.models import Patient, StaffInvitation, User
from core.db import db, utcnow
from core.delivery import invitations
from core.delivery.models import Message, MessageStatus
from core.errors import Conflict, DomainError, ValidationError
from core.i18n import country_name
from core.plugins import hooks_for_country
from tenants import provisioning
from tenants.models import Country, Tenant
from tenants.scoping import system_scope, tenant_scope

MOBILE = {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
FIELDS = ("clinic", "subdomain", "country", "name", "email", "phone")


class TooManySignUps(DomainError):
    """Too many pending sign-ups with one address or one phone."""

    status = 429
    code = "rate_limited"


def open_countries() -> list[Country]:
    """The countries whose operator lets practitioners sign up, by name (those where no
    plugin proves a phone left out: see :func:`proves_phones`)."""
    return [c for c in provisioning.countries() if c.self_signup and proves_phones(c.code)]


def proves_phones(code: str) -> bool:
    """Whether a plugin enabled for the country has a new admin prove their phone by a code
    at the first login (``relais_activation_step``: the otp plugin's). Without one, a
    sign-up would keep a phone nobody proved."""
    return bool(hooks_for_country(code).relais_activation_step.get_hookimpls())


def set_self_signup(code: str, allowed: bool) -> Country:
    """Open (or close) self sign-up for a country's practitioners.

    :raises ValidationError: on ``country``, unknown.
    :raises Conflict: on ``allowed``, when no plugin enabled there proves phones.
    """
    country = provisioning.country(code)
    if allowed and not proves_phones(country.code):
        raise Conflict(
            _(
                "Self sign-up stays closed in %(country)s: enable a plugin that proves phone "
                "numbers by a code there first (otp), so that each new clinic's phone is proved.",
                country=country_name(country.code),
            ),
            "allowed",
        )
    country.self_signup = allowed
    return country


def subdomain_check(slug: str) -> DomainError | None:
    """Why a new clinic may not take ``slug``, or None when it may."""
    try:
        provisioning.free_slug(slug)
    except (ValidationError, Conflict) as exc:
        return exc
    return None


def sign_up(form) -> Tenant:
    """Create a clinic and e-mail its first admin the invitation (the caller commits).

    :param form: ``clinic``, ``subdomain``, ``country``, ``name``, ``email``, ``phone``.
    :raises ValidationError, Conflict: naming the field of the form.
    :raises TooManySignUps: on ``email`` or ``phone``, past ``SIGNUP_PENDING_LIMIT``.
    """
    country = (form.get("country") or "").upper()
    if country not in {c.code for c in provisioning.countries() if c.self_signup}:
        raise ValidationError(_("Choose one of the countries offered."), "country")
    if not proves_phones(country):  # its operator turned the codes off since it opened
        raise ValidationError(
            _(
                "Sign-up is paused in this country: phone numbers cannot be confirmed there "
                "for now. Please try again later."
            ),
            "country",
        )
    email, name = staff.checked_identity(form.get("email"), form.get("name"))
    phone = check.phone(check.text(form.get("phone"), "phone", 40), country)
    if not phone:
        raise ValidationError(_("This field is required."), "phone")
    if phonenumbers.number_type(phonenumbers.parse(phone)) not in MOBILE:
        raise ValidationError(_("Enter a mobile number: a code will come to it."), "phone")
    with system_scope():
        _hold_and_count(email, phone)
        try:
            with db.session.begin_nested():
                tenant = provisioning.create_tenant(
                    form.get("clinic"), form.get("subdomain"), country
                )
        except ValidationError as exc:
            if exc.field == "name":  # the clinic's name, on this form
                exc.field = "clinic"
            raise
        except IntegrityError:  # another sign-up took the subdomain meanwhile
            raise Conflict(_("This subdomain is taken."), "subdomain") from None
        tenant.signed_up_at = utcnow()
        tenant.signup_email, tenant.signup_phone = email, phone
    invitations.invite(tenant, email, name, by="signup", phone=phone)
    return tenant


def _hold_and_count(email: str, phone: str) -> None:
    """Refuse a sign-up past the limit of pending ones for the address or the phone. On
    PostgreSQL, a lock per address and per phone (held to the end of the transaction) makes
    parallel sign-ups count one after the other."""
    if db.session.get_bind().dialect.name == "postgresql":
        for key in sorted((f"signup:{email}", f"signup:{phone}")):  # one order: no deadlock
            db.session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(key))))
    limit = current_app.config["SIGNUP_PENDING_LIMIT"]
    if pending_signups(Tenant.signup_email == email) >= limit:
        raise TooManySignUps(
            _(
                "Too many clinics wait for a first login with this e-mail address. Use the "
                "link of the e-mail you received, or wait until it expires."
            ),
            "email",
        )
    if pending_signups(Tenant.signup_phone == phone) >= limit:
        raise TooManySignUps(
            _(
                "Too many clinics wait for a first login with this phone number. Use the "
                "link of the e-mail you received, or wait until it expires."
            ),
            "phone",
        )


def pending_signups(where) -> int:
    """Sign-ups matching ``where`` whose invitation is neither used nor expired."""
    return db.session.scalar(
        sa.select(sa.func.count())
        .select_from(Tenant)
        .join(StaffInvitation, StaffInvitation.tenant_id == Tenant.id)
        .where(
            where,
            Tenant.signed_up_at.is_not(None),
            StaffInvitation.accepted_at.is_(None),
            StaffInvitation.expires_at > utcnow(),
        )
    )


def expired_signups(now=None, limit: int = 100) -> list[Tenant]:
    """Self-signed-up clinics nobody ever took up: their first admin's invitation expired
    unused and the clinic has no staff account and no patient. Operator-made clinics, and
    any clinic someone logged in to, are never among them."""
    now = now or utcnow()
    return list(
        db.session.scalars(
            sa.select(Tenant)
            .join(StaffInvitation, StaffInvitation.tenant_id == Tenant.id)
            .where(
                Tenant.signed_up_at.is_not(None),
                StaffInvitation.accepted_at.is_(None),
                StaffInvitation.expires_at <= now,
                ~sa.exists().where(User.tenant_id == Tenant.id),
                ~sa.exists().where(Patient.tenant_id == Tenant.id),
            )
            .order_by(StaffInvitation.expires_at)
            .limit(limit)
        )
    )


def release_expired_signups(now=None) -> list[str]:
    """Remove the clinics of :func:`expired_signups` (with their invitation's e-mail and its
    audit trail), so that their subdomains can be taken again; returns their subdomains.
    Runs in the system scope (the sweeper's, the CLI's); the caller commits."""
    released = []
    for tenant in expired_signups(now):
        released.append(tenant.slug)
        db.session.delete(tenant)  # its rows go with it (ON DELETE CASCADE)
    db.session.flush()
    return released


def suspend(tenant: Tenant) -> None:
    """Suspend a clinic: its subdomain answers 403 and its messages and jobs wait, held,
    until it is reactivated."""
    if tenant.suspended_at is None:
        tenant.suspended_at = utcnow()
        with tenant_scope(tenant.id):
            audit.record("clinic.suspend", tenant.id, by="operator")


def reactivate(tenant: Tenant) -> None:
    """Lift a clinic's suspension: the messages it held leave (the sweeper's next pass
    pushes them to the workers), and its held jobs run when they look again."""
    if tenant.suspended_at is not None:
        tenant.suspended_at = None
        with tenant_scope(tenant.id):
            db.session.execute(
                sa.update(Message)
                .where(Message.tenant_id == tenant.id, Message.status == MessageStatus.PENDING)
                .values(enqueued_at=None)
                .execution_options(synchronize_session=False)
            )
            audit.record("clinic.reactivate", tenant.id, by="operator")
