"""Messages as FHIR R4 ``Communication`` resources, read-only, under ``/api/v1/fhir``.

``GET /api/v1/fhir/Communication?patient=<id>`` answers a ``searchset`` Bundle of the
patient's messages, newest first (``_count``, at most 100); ``GET
/api/v1/fhir/Communication/<id>`` one message. Authentication is the API's (a bearer key of
the clinic); every read is audited; errors are ``OperationOutcome`` resources.

Each message is one Communication: ``sender`` and ``recipient`` the patient and the
practitioner (``Patient/<id>``, ``Practitioner/<id>``), ``sent`` its time, ``received``
when the other side read it, ``payload`` its text then its files (type, name, size; the
data stays in Relais), ``inResponseTo`` the message before it, and the conversation as
``topic`` (system :data:`CONVERSATION_SYSTEM`).
"""

import uuid
from typing import Any

import sqlalchemy as sa
from flask import request
from flask_babel import gettext as _

from core.plugin_api import (
    NotFound,
    ValidationError,
    answer_errors_as_fhir,
    api_blueprint,
    db,
    fhir_instant,
    fhir_json,
    fhir_operation,
    fhir_resource,
    record_audit,
)
from plugins.features.messaging.models import Attachment, Author, Conversation, ThreadMessage

CONVERSATION_SYSTEM = "urn:relais:messaging:conversation"
MAX_COUNT = 100

bp = api_blueprint("messaging_fhir", __name__, "/api/v1/fhir")


def to_fhir(message: ThreadMessage, conversation: Conversation, previous, files) -> dict:
    """One message as a FHIR R4 ``Communication``."""
    patient = {"reference": f"Patient/{conversation.patient_id}"}
    practitioner = {"reference": f"Practitioner/{conversation.practitioner_id}"}
    from_patient = message.author == Author.PATIENT
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "id": str(message.id),
        "status": "completed",
        "subject": patient,
        "topic": {"coding": [{"system": CONVERSATION_SYSTEM, "code": str(conversation.id)}]},
        "sender": patient if from_patient else practitioner,
        "recipient": [practitioner if from_patient else patient],
        "sent": fhir_instant(message.created_at),
        "payload": [{"contentString": message.body}]
        + [
            {"contentAttachment": {"contentType": a.mime_type, "title": a.filename, "size": a.size}}
            for a in files
        ],
    }
    if message.deleted_at:  # purged by staff: where it was, not what it said
        resource["status"] = "entered-in-error"
        del resource["payload"]
    if message.read_at:
        resource["received"] = fhir_instant(message.read_at)
    if previous is not None:
        resource["inResponseTo"] = [{"reference": f"Communication/{previous}"}]
    return resource


def _resources(messages: list[ThreadMessage]) -> list[dict]:
    """The messages as resources, in three queries whatever their number."""
    if not messages:
        return []
    conversation_ids = {m.conversation_id for m in messages}
    conversations = {
        c.id: c
        for c in db.session.scalars(
            sa.select(Conversation).where(Conversation.id.in_(conversation_ids))
        )
    }
    # The message before each (its inResponseTo), by the conversation's order.
    before = (
        sa.select(
            ThreadMessage.id,
            sa.func.lag(ThreadMessage.id).over(
                partition_by=ThreadMessage.conversation_id,
                order_by=(ThreadMessage.created_at, ThreadMessage.id),
            ),
        )
        .where(ThreadMessage.conversation_id.in_(conversation_ids))
        .subquery()
    )
    previous = dict(db.session.execute(sa.select(before)).all())
    files: dict[uuid.UUID, list[Attachment]] = {}
    for a in db.session.scalars(
        sa.select(Attachment).where(Attachment.message_id.in_([m.id for m in messages]))
    ):
        files.setdefault(a.message_id, []).append(a)
    return [
        to_fhir(m, conversations[m.conversation_id], previous.get(m.id), files.get(m.id, []))
        for m in messages
    ]


def _uuid(value: str | None, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationError(_("Not a valid id."), field) from None


@bp.get("/Communication")
@fhir_operation(
    "A patient's messages (FHIR R4 Communication), newest first",
    query={
        "patient": {"type": "string", "description": "Patient/<id> or the id"},
        "_count": {"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
    },
    answers={200: fhir_resource("Bundle")},
)
def communication_search():
    """The messages of one ``patient`` (``Patient/<id>`` or the id), newest first."""
    reference = (request.args.get("patient") or "").removeprefix("Patient/")
    if not reference:
        raise ValidationError(_("Search by patient: patient=<id>."), "patient")
    patient_id = _uuid(reference, "patient")
    try:
        count = int(request.args.get("_count", MAX_COUNT))
    except ValueError:
        count = -1
    if not 0 <= count <= MAX_COUNT:
        raise ValidationError(_("A whole number from 0 to %(n)d.", n=MAX_COUNT), "_count")
    messages = list(
        db.session.scalars(
            sa.select(ThreadMessage)
            .join(
                Conversation,
                sa.and_(
                    Conversation.tenant_id == ThreadMessage.tenant_id,
                    Conversation.id == ThreadMessage.conversation_id,
                ),
            )
            .where(Conversation.patient_id == patient_id)
            .order_by(ThreadMessage.created_at.desc(), ThreadMessage.id.desc())
            .limit(count)
        )
    )
    record_audit("messaging.communication.search", patient_id)
    payload = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(messages),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in _resources(messages)],
    }
    db.session.commit()  # the audit of the search
    return fhir_json(payload)


@bp.get("/Communication/<communication_id>")
@fhir_operation(
    "Read a message (FHIR R4 Communication)", answers={200: fhir_resource("Communication")}
)
def communication_read(communication_id: str):
    try:
        wanted = uuid.UUID(communication_id)
    except ValueError:
        wanted = None
    message = (
        db.session.scalar(sa.select(ThreadMessage).where(ThreadMessage.id == wanted))
        if wanted
        else None
    )
    if message is None:
        raise NotFound(_("No such message."))
    [payload] = _resources([message])
    record_audit("messaging.communication.read", message.conversation_id)
    db.session.commit()  # the audit of the read
    return fhir_json(payload)


answer_errors_as_fhir(bp)
