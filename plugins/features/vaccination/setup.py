"""Vaccines and campaigns, as operators set them up (``relais vaccination add-vaccine`` and
``add-campaign``)."""

import sqlalchemy as sa
from flask_babel import gettext as _

from core.plugin_api import ValidationError, attribute_labels, check, db
from plugins.features.vaccination.models import MAX_CODE, MAX_NAME, Campaign, Vaccine

MAX_DAYS = 3650
MAX_AGE = 130


def add_vaccine(
    code: str,
    name: str,
    doses: int,
    min_days: int = 0,
    ideal_days: int | None = None,
    max_days: int | None = None,
    min_age: int | None = None,
    max_age: int | None = None,
) -> Vaccine:
    """A vaccine and its dose schedule, in the current clinic (the caller commits).

    :raises ValidationError: naming the field (``code``, ``name``, ``doses``, ``min_days``,
        ``ideal_days``, ``max_days``, ``min_age``, ``max_age``)."""
    code = check.text(code, "code", MAX_CODE).lower()
    name = check.text(name, "name", MAX_NAME)
    if not code:
        raise ValidationError(_("This field is required."), "code")
    if not name:
        raise ValidationError(_("This field is required."), "name")
    if db.session.scalar(sa.select(Vaccine.id).where(Vaccine.code == code)):
        raise ValidationError(_("A vaccine has this code already."), "code")
    doses = check.whole_number(doses, "doses", 1, 10)
    low = check.whole_number(min_days, "min_days", 0, MAX_DAYS)
    ideal = check.whole_number(
        low if ideal_days is None else ideal_days, "ideal_days", low, MAX_DAYS
    )
    high = check.whole_number(ideal if max_days is None else max_days, "max_days", ideal, MAX_DAYS)
    ages = [
        None if a is None else check.whole_number(a, f, 0, MAX_AGE)
        for a, f in ((min_age, "min_age"), (max_age, "max_age"))
    ]
    if None not in ages and ages[1] < ages[0]:
        raise ValidationError(_("The highest age must not be below the lowest."), "max_age")
    vaccine = Vaccine(
        code=code,
        name=name,
        doses=doses,
        min_interval_days=low,
        ideal_interval_days=ideal,
        max_interval_days=high,
        min_age=ages[0],
        max_age=ages[1],
    )
    db.session.add(vaccine)
    db.session.flush()
    return vaccine


def add_campaign(
    name: str,
    vaccine_code: str | None = None,
    min_age: int | None = None,
    max_age: int | None = None,
    attributes: list[str] | tuple[str, ...] = (),
) -> Campaign:
    """An open campaign: who restricted centres take (the caller commits).

    :raises ValidationError: naming the field (``name``, ``vaccine``, ``min_age``,
        ``max_age``, ``attributes``)."""
    name = check.text(name, "name", MAX_NAME)
    if not name:
        raise ValidationError(_("This field is required."), "name")
    vaccine_id = None
    if vaccine_code:
        vaccine_id = db.session.scalar(
            sa.select(Vaccine.id).where(Vaccine.code == vaccine_code.lower())
        )
        if vaccine_id is None:
            raise ValidationError(_("Unknown vaccine: %(code)s.", code=vaccine_code), "vaccine")
    known = attribute_labels()
    wrong = [a for a in attributes if a not in known]
    if wrong:
        raise ValidationError(_("Choose one of: %(v)s.", v=", ".join(known)), "attributes")
    ages = [
        None if a is None else check.whole_number(a, f, 0, MAX_AGE)
        for a, f in ((min_age, "min_age"), (max_age, "max_age"))
    ]
    campaign = Campaign(
        name=name,
        vaccine_id=vaccine_id,
        min_age=ages[0],
        max_age=ages[1],
        attributes=list(attributes),
        active=True,
    )
    db.session.add(campaign)
    db.session.flush()
    return campaign
