"""Segments: which of the clinic's patients a campaign is for, as conditions the database
evaluates (never a loop over decrypted patients in Python).

A segment is a JSON object; each key narrows it, and none means every patient:

- ``age_min``, ``age_max``: an age band in years, from the birth date (patients without one
  are left out when a band is set);
- ``attributes``: follow-up attributes the patient must all have (``pregnancy_follow_up``...),
  matched through the keyed index of :func:`core.plugin_api.patient_has_attribute`;
- ``practitioner_id``: patients followed by that practitioner;
- ``languages``: patients who read one of these languages;
- ``sexes``: patients whose recorded sex is one of these (``female``, ``male``, ``other``,
  ``unknown``; patients with none recorded are left out when the filter is set);
- ``no_visit_months``: no appointment in the last N months (recall campaigns; only where the
  appointments feature is enabled).

Channel reachability is not part of the segment: it is counted per chosen channel (address,
consent, opt-out), and a campaign writes to the patients reachable on at least one.
"""

import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, timedelta

import sqlalchemy as sa
from flask_babel import gettext as _

from core.plugin_api import (
    CHANNELS,
    LANGUAGES,
    SEXES,
    ConsentAction,
    Patient,
    User,
    ValidationError,
    attribute_labels,
    db,
    declared_providers,
    enabled_plugins,
    hooks_for,
    latest_consent_sql,
    latest_consents_table,
    message_address_sql,
    patient_has_attribute,
    practitioners,
    utcnow,
)

# The channels a campaign may use, in the order pages list them: SMS and e-mail always; push
# (the patient's devices) and voice (a call reading the text) where the clinic has a provider
# for them (see :func:`offered`). A country's rules may still refuse one (most refuse calls
# for non-essential messages): the preview says so, and starting is refused.
ALWAYS = ("sms", "email")
# The order a campaign's message tries its channels (its plan; the core falls back along it):
# the patient's devices first (free, and a notification not shown in time goes on by the
# next channel), then SMS and e-mail, a call last (the most intrusive).
PLAN_ORDER = ("push", "sms", "email", "voice")


def offered(tenant) -> tuple[str, ...]:
    """The channels a campaign of ``tenant`` may choose: SMS and e-mail, and push and voice
    where one of the clinic's enabled plugins provides them."""
    enabled = enabled_plugins(tenant)
    provided = {p.channel for p in declared_providers().values() if p.plugin in enabled}
    return tuple(c for c in CHANNELS if c in ALWAYS or c in provided)


@dataclass(frozen=True)
class Segment:
    age_min: int | None = None
    age_max: int | None = None
    attributes: tuple[str, ...] = ()
    practitioner_id: str | None = None
    languages: tuple[str, ...] = ()
    sexes: tuple[str, ...] = ()
    no_visit_months: int | None = None

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _number(data: Mapping, name: str, low: int, high: int) -> int | None:
    value = data.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise ValidationError(_("Give a whole number from %(a)d to %(b)d.", a=low, b=high), name)
    return number


def _list(data: Mapping, name: str) -> list:
    if hasattr(data, "getlist"):  # a form: one value per ticked box
        return [v for v in data.getlist(name) if v]
    value = data.get(name) or []
    if not isinstance(value, list):
        raise ValidationError(_("Send a list."), name)
    return value


def parse(data: Mapping) -> Segment:
    """A segment from a form or JSON. :raises ValidationError: naming the field."""
    age_min = _number(data, "age_min", 0, 130)
    age_max = _number(data, "age_max", 0, 130)
    if age_min is not None and age_max is not None and age_max < age_min:
        raise ValidationError(_("The highest age is below the lowest."), "age_max")
    attributes = _list(data, "attributes")
    known = attribute_labels()
    if any(a not in known for a in attributes):
        raise ValidationError(_("Choose among: %(v)s.", v=", ".join(sorted(known))), "attributes")
    languages = _list(data, "languages")
    if any(lang not in LANGUAGES for lang in languages):
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(LANGUAGES)), "languages")
    sexes = _list(data, "sexes")
    if any(sex not in SEXES for sex in sexes):
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(SEXES)), "sexes")
    practitioner = (data.get("practitioner_id") or "").strip() or None
    if practitioner is not None:
        try:
            wanted = uuid.UUID(practitioner)
        except ValueError:
            wanted = None
        if wanted is None or wanted not in {u.id for u in practitioners()}:
            raise ValidationError(_("Unknown practitioner."), "practitioner_id")
        practitioner = str(wanted)
    return Segment(
        age_min=age_min,
        age_max=age_max,
        attributes=tuple(sorted(set(attributes))),
        practitioner_id=practitioner,
        languages=tuple(sorted(set(languages))),
        sexes=tuple(sorted(set(sexes))),
        no_visit_months=_number(data, "no_visit_months", 1, 120),
    )


def from_json(data: Mapping | None) -> Segment:
    """A segment as a campaign stored it."""
    data = dict(data or {})
    for name in ("attributes", "languages", "sexes"):
        data[name] = tuple(data.get(name) or ())
    return Segment(**{k: v for k, v in data.items() if k in Segment.__dataclass_fields__})


def _years_ago(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def conditions(tenant, segment: Segment) -> list[sa.ColumnElement[bool]]:
    """Conditions on :class:`Patient` for the patients of ``segment``."""
    found: list[sa.ColumnElement[bool]] = []
    today = utcnow().date()
    if segment.age_min is not None:
        found.append(Patient.birth_date <= _years_ago(today, segment.age_min))
    if segment.age_max is not None:
        found.append(Patient.birth_date > _years_ago(today, segment.age_max + 1))
    for attribute in segment.attributes:
        found.append(patient_has_attribute(tenant.id, attribute))
    if segment.practitioner_id:
        found.append(Patient.practitioners.any(User.id == uuid.UUID(segment.practitioner_id)))
    if segment.languages:
        found.append(Patient.language.in_(segment.languages))
    if segment.sexes:
        found.append(Patient.sex.in_(segment.sexes))
    if segment.no_visit_months and "appointments" in enabled_plugins(tenant):
        from plugins.features.appointments import Appointment  # its public module

        since = utcnow() - timedelta(days=30 * segment.no_visit_months)
        found.append(
            ~sa.exists().where(
                Appointment.tenant_id == Patient.tenant_id,
                Appointment.patient_id == Patient.id,
                Appointment.starts_at >= since,
            )
        )
    return found


def _consent_counts(tenant) -> tuple[str, ...]:
    """The consent steps that open non-essential messages in the clinic's country."""
    profile = hooks_for(tenant).relais_country_profile(country_code=tenant.country_code)
    if profile is not None and profile.double_opt_in:
        return (ConsentAction.CONFIRMED.value,)
    return (ConsentAction.GIVEN.value, ConsentAction.CONFIRMED.value)


def reachable(tenant, channel: str) -> sa.ColumnElement[bool]:
    """The patient has an address for ``channel`` and a consent that counts on it."""
    return sa.and_(
        message_address_sql(tenant, channel),
        latest_consent_sql(channel).in_(_consent_counts(tenant)),
    )


def reachable_on_any(tenant, channels) -> sa.ColumnElement[bool]:
    return sa.or_(*(reachable(tenant, c) for c in channels))


def joined_reach(tenant, query: sa.Select, channels) -> tuple[sa.Select, sa.ColumnElement]:
    """``query`` (on :class:`Patient`) with each channel's latest consents outer-joined, and
    the condition "reachable on one of ``channels``" on them: for whole-segment queries, where
    :func:`reachable_on_any`'s correlated subqueries would look once per patient."""
    reach = []
    for channel in channels:
        steps = latest_consents_table(channel, name=f"reach_{channel}")
        query = query.outerjoin(steps, steps.c.patient_id == Patient.id)
        latest = sa.func.coalesce(steps.c.action, "none")
        address = message_address_sql(tenant, channel)
        reach.append(sa.and_(address, latest.in_(_consent_counts(tenant))))
    return query, sa.or_(*reach)


def count(tenant, segment: Segment, channels) -> dict:
    """How many patients the segment holds, how many a campaign by ``channels`` would write
    to, and per channel how many are reachable or left out (no address, opted out, no
    consent), in one query (each channel's latest consents joined once). Counts only:
    nothing is read of any patient, nothing audited."""
    source = sa.select(Patient.id).select_from(Patient)
    columns = [sa.func.count(Patient.id).label("total")]
    reach = []
    counting = _consent_counts(tenant)
    for channel in channels:
        steps = latest_consents_table(channel, name=f"consent_{channel}")
        source = source.outerjoin(steps, steps.c.patient_id == Patient.id)
        address = message_address_sql(tenant, channel)
        latest = sa.func.coalesce(steps.c.action, "none")
        withdrawn = latest == ConsentAction.WITHDRAWN.value
        counts = latest.in_(counting)
        reach.append(sa.and_(address, counts))
        columns += [
            sa.func.count(Patient.id).filter(~address).label(f"{channel}:no_address"),
            sa.func.count(Patient.id).filter(address, withdrawn).label(f"{channel}:opted_out"),
            sa.func.count(Patient.id)
            .filter(address, ~withdrawn, ~counts)
            .label(f"{channel}:no_consent"),
            sa.func.count(Patient.id).filter(reach[-1]).label(f"{channel}:reachable"),
        ]
    if channels:
        columns.append(sa.func.count(Patient.id).filter(sa.or_(*reach)).label("recipients"))
    query = source.with_only_columns(*columns).where(*conditions(tenant, segment))
    values = db.session.execute(query).one()._mapping
    result = {"total": values["total"], "recipients": values.get("recipients", 0), "channels": {}}
    for channel in channels:
        result["channels"][channel] = {
            why: values[f"{channel}:{why}"]
            for why in ("reachable", "no_address", "opted_out", "no_consent")
        }
    return result
