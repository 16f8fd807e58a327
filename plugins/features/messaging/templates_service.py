"""Message templates: a staff member's saved answers, starred ones first, with variables
filled in when used: ``{{ patient }}``, ``{{ practitioner }}``, ``{{ clinic }}``, and the
appointment's ``{{ appointment_date }}``, ``{{ appointment_time }}`` and ``{{ reason }}``
(the one the conversation was started from, else the patient's next one; asked through the
``relais_messaging_appointment`` hook, so empty without the appointments feature)."""

import uuid

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import ngettext

from core.plugin_api import (
    NotFound,
    User,
    ValidationError,
    db,
    format_date,
    format_time,
    hooks_for,
    record_audit,
    render_message,
    unknown_template_variables,
)
from plugins.features.messaging.models import MAX_BODY, MAX_TITLE, Template

VARIABLES = (
    "patient",
    "practitioner",
    "clinic",
    "appointment_date",
    "appointment_time",
    "reason",
)


def mine(user: User) -> list[Template]:
    """The user's templates, starred first, then by title."""
    query = (
        sa.select(Template)
        .where(Template.owner_id == user.id)
        .order_by(Template.starred.desc(), Template.title, Template.id)
    )
    return list(db.session.scalars(query))


def find(user: User, template_id) -> Template:
    try:
        wanted = uuid.UUID(str(template_id))
    except ValueError:
        wanted = None
    found = None
    if wanted:
        found = db.session.scalar(
            sa.select(Template).where(Template.id == wanted, Template.owner_id == user.id)
        )
    if found is None:
        raise NotFound(_("No such template."))
    return found


def _checked(title, body) -> tuple[str, str]:
    title, body = (title or "").strip(), (body or "").strip()
    if not title:
        raise ValidationError(_("Give the template a title."), "title")
    if len(title) > MAX_TITLE:
        raise ValidationError(_("At most %(n)d characters.", n=MAX_TITLE), "title")
    if not body:
        raise ValidationError(_("Write the template's text."), "body")
    if len(body) > MAX_BODY:
        raise ValidationError(_("At most %(n)d characters.", n=MAX_BODY), "body")
    unknown = unknown_template_variables(body, VARIABLES)
    if unknown:
        raise ValidationError(
            ngettext(
                "Unknown variable: %(names)s. Use only %(known)s.",
                "Unknown variables: %(names)s. Use only %(known)s.",
                len(unknown),
                names=", ".join(f"{{{{ {name} }}}}" for name in unknown),
                known=", ".join(f"{{{{ {name} }}}}" for name in VARIABLES),
            ),
            "body",
        )
    try:
        render_message(body, dict.fromkeys(VARIABLES, ""))
    except ValidationError as exc:
        raise ValidationError(exc.message, "body") from None
    return title, body


def save(user: User, template_id, title, body, starred: bool) -> Template:
    """Create (``template_id`` None) or change one of the user's templates.

    :raises ValidationError: on ``title`` or ``body`` (empty, too long, a template that does
        not render).
    """
    title, body = _checked(title, body)
    template = find(user, template_id) if template_id else Template(owner_id=user.id)
    template.title, template.body, template.starred = title, body, starred
    db.session.add(template)
    return template


def delete(user: User, template_id) -> None:
    db.session.delete(find(user, template_id))


def star(user: User, template_id, starred: bool) -> None:
    find(user, template_id).starred = starred


def fill(template: Template, patient, practitioner, tenant, appointment_id=None) -> str:
    """The template's text for one conversation, its variables filled in, dates and times
    in the reader's language on the clinic's clock. The appointment is ``appointment_id``
    (the conversation's), else the patient's next one; its reason, health data, is read
    only when the template uses it, and that read is audited."""
    values = dict.fromkeys(VARIABLES, "")
    values |= {
        "patient": patient.full_name,
        "practitioner": practitioner.name if practitioner is not None else "",
        "clinic": tenant.name,
    }
    if unknown_template_variables(template.body, ("patient", "practitioner", "clinic")):
        appointment = hooks_for(tenant).relais_messaging_appointment(
            tenant=tenant, patient=patient, appointment_id=appointment_id
        )
        if appointment is not None:
            values["appointment_date"] = format_date(appointment.starts_at, weekday=True)
            values["appointment_time"] = format_time(appointment.starts_at)
            if "reason" in unknown_template_variables(template.body, ()):
                values["reason"] = appointment.reason or ""
                record_audit("messaging.appointment_read", appointment.id)
    return render_message(template.body, values)["text"]
