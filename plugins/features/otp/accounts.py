"""Patients' accounts: a phone number proved by a code, on the clinic's patient record.

Signing up links the clinic's existing record when its phone and birth date match (the
patient is known at the front desk); otherwise it creates a record that staff review
(:func:`core.clinic.patients.mark_reviewed`).
"""

from datetime import date

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from core.plugin_api import (
    LANGUAGES,
    N_,
    Patient,
    ValidationError,
    check,
    create_patient,
    db,
    record_audit,
    utcnow,
)


def account_for(phone: str) -> Patient | None:
    """The patient of the current clinic who signed up with ``phone`` (E.164), if any."""
    return db.session.scalar(
        sa.select(Patient).where(Patient.phone == phone, Patient.signed_up_at.is_not(None))
    )


def sign_up(tenant, phone: str, data: dict) -> tuple[Patient, bool]:
    """Open an account for the holder of ``phone``, just proved by a code.

    :param data: ``first_name``, ``last_name``, ``birth_date`` (YYYY-MM-DD), ``email``
        (optional), ``language``.
    :return: the patient, and whether an existing record of the clinic was linked.
    :raises ValidationError: naming the field.
    """
    wanted = {"first_name", "last_name", "birth_date", "email", "language"}
    unknown = set(data) - wanted
    if unknown:
        field = sorted(unknown)[0]
        raise ValidationError(_("Unknown field: %(field)s.", field=field), field)
    for name in ("first_name", "last_name"):
        if not check.text(data.get(name), name, 100):
            raise ValidationError(_("This field is required."), name)
    born = check.birth_date(data.get("birth_date"))
    if born is None:
        raise ValidationError(_("Enter your birth date."), "birth_date")
    email = check.email(data.get("email"))
    language = data.get("language") or None
    if language not in LANGUAGES:
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(LANGUAGES)), "language")
    existing = account_for(phone)
    if existing is not None:  # signed up meanwhile (another tab): that is their account
        return existing, True
    patient = _record_of(phone, born)
    linked = patient is not None
    if patient is None:
        fields = {k: data.get(k) for k in ("first_name", "last_name")}
        patient = create_patient(
            tenant,
            {**fields, "phone": phone, "birth_date": born.isoformat(), "email": email},
            by="patient",
        )
        patient.review_needed = True
    elif email and not patient.email:
        patient.email = email
    patient.language = language
    patient.signed_up_at = utcnow()
    try:
        db.session.flush()
    except IntegrityError:  # the same number signed up at the same moment, elsewhere:
        db.session.rollback()  # nothing of this one is kept; that one is their account
        return account_for(phone), True
    record_audit(
        "patient.sign_up", patient.id, N_("linked") if linked else N_("new record"), "patient"
    )
    return patient, linked


def _record_of(phone: str, born: date) -> Patient | None:
    """The clinic's record with this phone and birth date and no account yet: the oldest,
    should the clinic hold duplicates."""
    return db.session.scalar(
        sa.select(Patient)
        .where(
            Patient.phone == phone,
            Patient.birth_date == born,
            Patient.signed_up_at.is_(None),
        )
        .order_by(Patient.created_at)
        .limit(1)
    )
