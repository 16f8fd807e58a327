"""The clinic's message log, for its staff: the messages sent, filtered, and one message's
history (every step and attempt).

Routes only: parse the filters, call :mod:`core.delivery.log`, render.
"""

import uuid

from flask import Blueprint, render_template, request

from core import validation as check
from core.clinic.apikeys import KIND_NAMES
from core.db import db
from core.delivery import log as message_log
from core.errors import ValidationError
from core.web.staff_access import require_staff

bp = Blueprint("messages", __name__)
bp.before_request(require_staff)


@bp.route("/messages")
def index():
    page = check.page(request.args.get("page"))
    try:
        filters = message_log.parse_filters(request.args)
    except ValidationError as exc:
        return _message_log(message_log.Filters(), [], 0, 1, exc), exc.status
    rows, total = message_log.search_messages(filters, page)
    db.session.commit()  # the audit of the search
    return _message_log(filters, rows, total, page)


def _message_log(filters, rows, total: int, page: int, error: ValidationError | None = None):
    return render_template(
        "clinic/messages.html",
        key_kinds=KIND_NAMES,
        filters=filters,
        submitted=request.args,
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // message_log.PAGE_SIZE)),
        error=error,
        **_labels(),
    )


@bp.route("/messages/<uuid:message_id>")
def view(message_id: uuid.UUID):
    message, patient = message_log.read_message(message_id)
    events, attempts = message_log.history(message)
    db.session.commit()  # the audit of the read
    return render_template(
        "clinic/message.html",
        key_kinds=KIND_NAMES,
        message=message,
        patient=patient,
        events=events,
        attempts=attempts,
        outcomes=message_log.outcome_labels(),
        steps=message_log.event_labels(),
        verdict_sentence=message_log.verdict_sentence,
        event_detail=lambda event: message_log.event_detail(message, event),
        **_labels(),
    )


def _labels() -> dict:
    """What both pages show messages with: the masked address and the words for values."""
    return {
        "masked": message_log.masked,
        "statuses": message_log.status_labels(),
        "channels": message_log.channel_labels(),
        "purposes": message_log.purpose_labels(),
    }
