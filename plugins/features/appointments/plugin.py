"""Appointments: the clinic's agenda, booked by staff or pushed by practice software.

Staff use the agenda page (:mod:`.views`); practice software pushes appointments through the
JSON API (:mod:`.api`) and reads them as FHIR R4 (:mod:`.fhir`). Other features use the
public module, :mod:`plugins.features.appointments`, and the hook
``relais_appointment_changed``, declared in :mod:`.hookspecs`.
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.plugin_api import (
    MenuItem,
    Patient,
    Role,
    Setting,
    User,
    db,
    hookimpl,
)
from plugins.features.appointments import api, fhir, patient_views, service, views
from plugins.features.appointments import hookspecs as appointment_hookspecs
from plugins.features.appointments.service import MAX_LOCATION, is_type_word, split_types

kind = "feature"
hookspecs = appointment_hookspecs  # the hooks this feature calls; the host adds them
name = _l("Appointments")
description = _l(
    "Appointments: the clinic's agenda, booked by staff or pushed by practice software, "
    "read as FHIR."
)


def _overlaps(text: str) -> str:
    value = text.strip().lower()
    if value not in ("allow", "refuse"):
        raise ValueError(_("Choose one of the list."))
    return value


def _types(text: str) -> str:
    types = split_types(text)
    if not all(is_type_word(t) for t in types):
        raise ValueError(_("short words separated by commas, e.g. consultation, vaccination"))
    return ", ".join(dict.fromkeys(types))


def _address(text: str) -> str:
    address = " ".join(text.split())
    if len(address) > MAX_LOCATION:
        raise ValueError(_("at most %(n)d characters", n=MAX_LOCATION))
    return address


@hookimpl
def relais_register_blueprints():
    return [views.bp, api.bp, fhir.bp, patient_views.bp]


@hookimpl
def relais_menu_items():
    return [MenuItem(label=_l("Agenda"), endpoint="appointments.agenda", order=10)]


@hookimpl
def relais_dashboard_items(tenant, day):
    return [views.today_card(tenant, day)]


@hookimpl(optionalhook=True)
def relais_messaging_appointment(patient, appointment_id):
    """The appointment a message is about: the one named if it is the patient's, else
    their next one to come (a bonus where the messaging feature is installed)."""
    if appointment_id is not None:
        return patient_views.own(patient, appointment_id)
    coming = patient_views.coming(patient)
    return coming[0] if coming else None


@hookimpl
def relais_patient_home_cards(tenant, patient):
    """The patient's coming appointments, to confirm or cancel."""
    return [patient_views.card(tenant, patient)]


# The demo's week: (external id, patient's first name, days from today, local time, minutes).
DEMO = (
    ("demo-1", "Jeanne", 1, time(9), 20),
    ("demo-2", "Lucas", 1, time(10, 30), 20),
    ("demo-3", "Amina", 2, time(14), 30),
    ("demo-4", "Paul", 3, time(11), 20),
)


@hookimpl
def relais_seed_demo(tenant):
    """This week's appointments with the demo practitioner, pushed as practice software would
    (by external id: setting the demo up again moves them to the days to come)."""
    doctor = db.session.scalar(sa.select(User).where(User.role == Role.PRACTITIONER))
    if doctor is None:
        return
    zone = ZoneInfo(tenant.timezone)
    today = datetime.now(zone).date()
    for external_id, first_name, days, at, minutes in DEMO:
        patient = db.session.scalar(sa.select(Patient).where(Patient.first_name == first_name))
        if patient is None:
            continue
        starts = datetime.combine(today + timedelta(days=days), at, zone)
        service.upsert(
            tenant,
            {
                "external_id": external_id,
                "patient_id": str(patient.id),
                "practitioner_id": str(doctor.id),
                "starts_at": starts.isoformat(),
                "duration_minutes": minutes,
            },
        )


@hookimpl
def relais_plugin_settings():
    return [
        Setting(
            "overlaps",
            _l("Overlapping appointments"),
            default="refuse",
            parse=_overlaps,
            clinic=True,
            choices={
                "refuse": _l("One appointment at a time per practitioner"),
                "allow": _l("Several at once (group sessions, a shared slot)"),
            },
        ),
        Setting(
            "types",
            _l("Appointment types"),
            default="",
            parse=_types,
            clinic=True,
            help=_l(
                "Separated by commas, e.g. consultation, vaccination; the first is the default. "
                "Empty: any short word."
            ),
        ),
        Setting(
            "address",
            _l("Clinic's address"),
            default="",
            parse=_address,
            clinic=True,
            help=_l("Where appointments take place unless they say otherwise."),
        ),
    ]
