"""Patients: creation, edition, search; each read by staff is audited."""

import uuid
from collections.abc import Iterable
from datetime import date
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import pgettext
from sqlalchemy.orm import defer, load_only

from core import phones
from core import validation as check
from core.clinic import audit
from core.clinic.models import Patient, PatientAttribute, Role, User
from core.db import among, db, utcnow
from core.errors import NotFound, ValidationError
from core.plugins import hooks_for
from core.vocabulary import CHANNELS, LANGUAGES, SEXES
from tenants import scoping
from tenants.models import Tenant

FIELDS = (
    "first_name",
    "last_name",
    "phone",
    "email",
    "birth_date",
    "sex",
    "language",
    "timezone",
    "preferred_channel",
    "attributes",
    "practitioner_ids",
)
LIST_FIELDS = ("attributes", "practitioner_ids")
PAGE_SIZE = 50


def attribute_labels() -> dict[str, str]:
    """The words staff read for each follow-up attribute of a patient."""
    return {
        PatientAttribute.LONG_TERM_CONDITION: _("Long-term condition"),
        PatientAttribute.CHRONIC_DISEASE: _("Chronic disease"),
        PatientAttribute.PREGNANCY_FOLLOW_UP: _("Pregnancy follow-up"),
        PatientAttribute.NEEDS_SUPPORT: _("Needs support"),
    }


def sex_labels() -> dict[str, str]:
    """The words staff read for each sex a patient may have recorded."""
    return {
        "female": _("Female"),
        "male": _("Male"),
        "other": pgettext("sex", "Other"),
        "unknown": _("Unknown"),
    }


def create_patient(tenant, data: dict[str, Any], by: str | None = None) -> Patient:
    """Create a patient from form or JSON data. :raises ValidationError: naming the field.

    :param by: who creates it, when not the request's staff member or key (``"patient"``
        signing up online).
    """
    patient = Patient(language=default_language(tenant), timezone=tenant.timezone)
    _apply(tenant, patient, data, creating=True)
    db.session.add(patient)
    db.session.flush()
    audit.record("patient.create", patient.id, by=by)
    return patient


def default_language(tenant) -> str:
    """A new patient's language: the clinic's own choice, else the first of its country's, as
    its regulation plugin says (the country's locale where no regulation plugin answers)."""
    if tenant.language:
        return tenant.language
    profile = hooks_for(tenant).relais_country_profile(country_code=tenant.country_code)
    return profile.default_language if profile else tenant.country.locale[:2]


def update_patient(tenant, patient: Patient, data: dict[str, Any]) -> Patient:
    """Change the fields present in ``data``; others stay. :raises ValidationError."""
    _apply(tenant, patient, data, creating=False)
    patient.updated_at = utcnow()
    audit.record("patient.update", patient.id)
    return patient


def get_patient(patient_id: uuid.UUID | str) -> Patient:
    """A patient of the current clinic, its read audited. :raises NotFound."""
    patient = find_patient(patient_id)
    audit.record("patient.read", patient.id)
    return patient


def find_patient(patient_id: uuid.UUID | str) -> Patient:
    """A patient of the current clinic by id (unaudited). :raises NotFound."""
    try:
        patient_id = uuid.UUID(str(patient_id))
    except ValueError:
        raise NotFound(_("No such patient.")) from None
    patient = db.session.scalar(sa.select(Patient).where(Patient.id == patient_id))
    if patient is None:
        raise NotFound(_("No such patient."))
    return patient


def for_sending(ids: Iterable[uuid.UUID], only: tuple = ()) -> dict[uuid.UUID, Patient]:
    """The clinic's patients among ``ids``, by id, as messages to them need them (unaudited):
    one statement whatever their number, and their encrypted attributes, which are not for
    sending, not decrypted (read on first use, should a plugin want them). Ids of no patient
    of the clinic are left out.

    :param only: the columns to read now, the rest on first use (a worker reads only the
        addresses and the language); by default all but the attributes.
    """
    dialect = db.session.get_bind().dialect.name
    statement = _FOR_SENDING.get((dialect, only))
    if statement is None:  # made once: building it cost as much as running it
        loaded = [load_only(*only)] if only else [defer(Patient.attributes)]
        if not only:
            loaded.append(defer(Patient.attribute_tokens))
        statement = _FOR_SENDING[dialect, only] = (
            sa.select(Patient).where(among(Patient.id, name="ids")).options(*loaded)
        )
    return {p.id: p for p in db.session.scalars(statement, {"ids": list(ids)})}


_FOR_SENDING: dict[tuple, sa.Select] = {}  # by dialect and columns


def search_patients(
    query: str = "", page: int = 1, to_check: bool = False, birth_date: date | None = None
) -> tuple[list[Patient], int]:
    """Patients whose name, phone or e-mail contains ``query``, by name; and the total.

    :param to_check: only the records an online sign-up created, not yet checked by staff.
    :param birth_date: only the patients born that day.
    """
    conditions = matching(query)
    if to_check:
        conditions.append(Patient.review_needed.is_(True))
    if birth_date is not None:
        conditions.append(Patient.birth_date == birth_date)
    stmt = sa.select(Patient).where(*conditions)
    # count(Patient.id), not count(*) from a subquery: the ORM's tenant filter follows the
    # entities selected (tenants.scoping); without PostgreSQL's RLS it is the only wall.
    total = db.session.scalar(sa.select(sa.func.count(Patient.id)).where(*conditions))
    rows = db.session.scalars(
        stmt.order_by(Patient.last_name, Patient.first_name, Patient.id)
        .limit(PAGE_SIZE)
        .offset((max(page, 1) - 1) * PAGE_SIZE)
    ).all()
    audit.record("patient.search")
    return list(rows), total


def count_patients() -> int:
    """How many patients the clinic has (nothing read: not audited)."""
    return db.session.scalar(sa.select(sa.func.count(Patient.id))) or 0


def first_to_check(limit: int) -> list[Patient]:
    """The oldest records an online sign-up created that staff have not checked yet, for the
    home page's reminder of them (names only: not audited, as a count is not)."""
    return list(
        db.session.scalars(
            sa.select(Patient)
            .where(Patient.review_needed.is_(True))
            .order_by(Patient.created_at, Patient.id)
            .limit(limit)
        )
    )


def count_to_check() -> int:
    """How many records an online sign-up created that staff have not checked yet."""
    return db.session.scalar(
        sa.select(sa.func.count(Patient.id)).where(Patient.review_needed.is_(True))
    )


def mark_reviewed(patient: Patient) -> bool:
    """Staff checked a record an online sign-up created: it leaves the list to check.

    :return: whether anything changed (False when it was already checked: nothing audited).
    """
    if not patient.review_needed:
        return False
    patient.review_needed = False
    patient.updated_at = utcnow()
    audit.record("patient.reviewed", patient.id)
    return True


def matching(query: str) -> list[sa.ColumnElement[bool]]:
    """Conditions on Patient: each word of ``query`` in the name, phone or e-mail; a phone
    number found however it is typed (``06 12 34 56 78``, ``+33 6 12…``, ``0033…``), read
    in the clinic's country."""
    region = _region()
    prefixes, fragments = phones.search_forms(query, region)
    if prefixes or fragments:  # the whole query is a number, spaces and all
        return [_phone_like(prefixes, fragments)]
    conditions = []
    for word in query.split():
        like = f"%{word.lower()}%"
        prefixes, fragments = phones.search_forms(word, region)
        conditions.append(
            sa.or_(
                sa.func.lower(Patient.last_name).like(like),
                sa.func.lower(Patient.first_name).like(like),
                Patient.phone.like(f"%{word}%"),
                sa.func.lower(Patient.email).like(like),
                *([_phone_like(prefixes, fragments)] if prefixes or fragments else []),
            )
        )
    return conditions


def _phone_like(prefixes: list[str], fragments: list[str]) -> sa.ColumnElement[bool]:
    return sa.or_(
        *(Patient.phone.like(f"{prefix}%") for prefix in prefixes),
        *(Patient.phone.like(f"%{digits}%") for digits in fragments),
    )


def _region() -> str:
    """The country of the clinic in scope, whose numbers are typed without their code."""
    return db.session.scalar(
        sa.select(Tenant.country_code).where(Tenant.id == scoping.current_tenant_id())
    )


def to_json(patient: Patient) -> dict[str, Any]:
    return {
        "id": str(patient.id),
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "phone": patient.phone,
        "email": patient.email,
        "birth_date": patient.birth_date.isoformat() if patient.birth_date else None,
        "sex": patient.sex,
        "language": patient.language,
        "timezone": patient.timezone,
        "preferred_channel": patient.preferred_channel,
        "attributes": list(patient.attributes or []),
        "practitioner_ids": [str(u.id) for u in patient.practitioners],
        "created_at": patient.created_at.isoformat(),
        "updated_at": patient.updated_at.isoformat(),
    }


def _apply(tenant, patient: Patient, data: dict[str, Any], creating: bool) -> None:
    unknown = set(data) - set(FIELDS)
    if unknown:
        field = sorted(unknown)[0]
        raise ValidationError(_("Unknown field: %(field)s.", field=field), field)
    for name in ("first_name", "last_name"):
        if name in data or creating:
            value = check.text(data.get(name), name, 100)
            if not value:
                raise ValidationError(_("This field is required."), name)
            setattr(patient, name, value)
    if "phone" in data:
        patient.phone = check.phone(data["phone"], tenant.country_code)
    if "email" in data:
        patient.email = check.email(data["email"])
    if "birth_date" in data:
        patient.birth_date = check.birth_date(data["birth_date"])
    if "sex" in data:
        value = data["sex"] or None
        if value is not None and value not in SEXES:
            raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(SEXES)), "sex")
        patient.sex = value
    if "language" in data:
        if data["language"] not in LANGUAGES:
            raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(LANGUAGES)), "language")
        patient.language = data["language"]
    if "timezone" in data:
        patient.timezone = check.timezone(data["timezone"])
    if "preferred_channel" in data:
        value = data["preferred_channel"] or None
        if value is not None and value not in CHANNELS:
            raise ValidationError(
                _("Choose one of: %(v)s.", v=", ".join(CHANNELS)), "preferred_channel"
            )
        patient.preferred_channel = value
    if "attributes" in data:
        values = data["attributes"] or []
        allowed = {a.value for a in PatientAttribute}
        if not isinstance(values, list) or not all(
            isinstance(v, str) and v in allowed for v in values
        ):
            raise ValidationError(
                _("Choose among: %(v)s.", v=", ".join(sorted(allowed))), "attributes"
            )
        patient.attributes = sorted(set(values))
    if "practitioner_ids" in data:
        patient.practitioners = _practitioners(data["practitioner_ids"] or [])


def _practitioners(ids: list) -> list[User]:
    if not isinstance(ids, list):
        raise ValidationError(_("Send a list of practitioner ids."), "practitioner_ids")
    try:
        wanted = {uuid.UUID(str(i)) for i in ids}
    except ValueError:
        raise ValidationError(_("Unknown practitioner."), "practitioner_ids") from None
    found = db.session.scalars(
        sa.select(User).where(User.id.in_(wanted), User.role == Role.PRACTITIONER)
    ).all()
    if len(found) != len(wanted):
        raise ValidationError(_("Unknown practitioner."), "practitioner_ids")
    return list(found)
