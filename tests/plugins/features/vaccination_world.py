"""The world of the vaccination tests: a French clinic with the feature, vaccines, centres
with opening hours, lines and stock, patients, an API key. Days are counted from today in
Paris, so every slot booked is in the future."""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.clinic import apikeys
from core.db import db, new_id
from plugins.features.vaccination.models import (
    Campaign,
    Centre,
    CentreKind,
    Line,
    OpeningHours,
    Stock,
    Vaccine,
)
from tenants.scoping import tenant_scope

PARIS = ZoneInfo("Europe/Paris")
PLUGINS = ("fr", "vaccination", "otp", "outbox")


def today() -> date:
    return datetime.now(PARIS).date()


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A Paris wall-clock time, as the UTC instant the API takes."""
    return datetime.combine(day, time(hour, minute), PARIS).astimezone(UTC)


@dataclass
class Setup:
    tenant_id: uuid.UUID
    vaccine_id: uuid.UUID
    single_id: uuid.UUID
    centre_id: uuid.UUID
    token: str


def add_vaccine(code="comirnaty", name="Comirnaty", doses=2, lo=21, ideal=28, hi=42, **ages):
    vaccine = Vaccine(
        code=code,
        name=name,
        doses=doses,
        min_interval_days=lo,
        ideal_interval_days=ideal,
        max_interval_days=hi,
        **ages,
    )
    db.session.add(vaccine)
    db.session.flush()
    return vaccine


def add_centre(
    code="PAR-01",
    name="Centre Paris 15",
    lines=2,
    capacity=1,
    slot_minutes=10,
    restricted=False,
    days=range(1, 50),
    opens=time(9),
    closes=time(12),
    stock=100,
    vaccines=(),
):
    centre = Centre(
        code=code,
        name=name,
        kind=CentreKind.MEGA if restricted else CentreKind.CENTRE,
        address="1 rue de Vaugirard, Paris",
        restricted=restricted,
        slot_minutes=slot_minutes,
        capacity=capacity,
    )
    db.session.add(centre)
    db.session.flush()
    for n in range(1, lines + 1):
        db.session.add(Line(id=new_id(), centre_id=centre.id, position=n, name=str(n)))
    for d in days:
        day = today() + timedelta(days=d)
        db.session.add(OpeningHours(centre_id=centre.id, day=day, opens=opens, closes=closes))
        for vaccine in vaccines:
            db.session.add(Stock(centre_id=centre.id, vaccine_id=vaccine.id, day=day, doses=stock))
    db.session.flush()
    return centre


def build(app, tenant, **centre) -> Setup:
    with app.app_context(), tenant_scope(tenant.id):
        vaccine = add_vaccine()
        single = add_vaccine("jcovden", "Jcovden", doses=1, lo=0, ideal=0, hi=0, min_age=18)
        where = add_centre(vaccines=(vaccine, single), **centre)
        _key, token = apikeys.create_key("call centre")
        db.session.commit()
        return Setup(tenant.id, vaccine.id, single.id, where.id, token)


def add_campaign(app, tenant, name, **fields) -> None:
    with app.app_context(), tenant_scope(tenant.id):
        db.session.add(Campaign(name=name, **fields))
        db.session.commit()
