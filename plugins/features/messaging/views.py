"""Messaging's pages: the patient's (``/me/messages``) and the staff inbox (``/inbox``).

Routes only: parse the form, call :mod:`.service` or :mod:`.inbox`, render. A refusal
re-renders the page with the message next to its field, and nothing is stored.
"""

import io
import uuid

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from core.plugin_api import (
    DashboardItem,
    DashboardLine,
    DomainError,
    Patient,
    Role,
    db,
    format_date,
    patient_required,
    plugin_setting,
    practitioners,
    utcnow,
    works_for,
)
from plugins.features.messaging import inbox, service
from plugins.features.messaging import templates_service as templates
from plugins.features.messaging.models import ReplyMode

patient_bp = Blueprint(
    "messaging_patient", __name__, url_prefix="/me/messages", template_folder="templates"
)
patient_bp.relais_public = True  # a patient's own pages: each view checks their session

bp = Blueprint("messaging", __name__, url_prefix="/inbox", template_folder="templates")


def _uploads() -> list[tuple[str, bytes]]:
    """The files of the form's ``attachments`` field, each read up to one byte past the
    clinic's limit (enough to refuse it without reading a huge file whole)."""
    limit = int(plugin_setting(g.tenant, service.PLUGIN, "max_attachment_mb") * 1_000_000)
    found = []
    for upload in request.files.getlist("attachments"):
        found.append((upload.filename or "", upload.read(limit + 1)))
        upload.close()  # a large one is spooled to a temporary file: closed at once
    return found


def _download(attachment):
    return send_file(
        io.BytesIO(attachment.data),
        mimetype=attachment.mime_type,
        as_attachment=True,
        download_name=attachment.filename,
    )


# --- the patient's pages ----------------------------------------------------------------------


def _patient_index(error=None, form=None, status=200):
    return (
        render_template(
            "messaging/patient_index.html",
            recipients=service.recipients(g.tenant, g.patient),
            conversations=service.patient_conversations(g.patient),
            names={p.id: p.name for p in g.patient.practitioners},
            error=error,
            form=form or {},
            max_mb=plugin_setting(g.tenant, service.PLUGIN, "max_attachment_mb"),
        ),
        status,
    )


@patient_bp.get("/")
@patient_required
def index():
    """The patient's conversations and the form of a new request."""
    return _patient_index()


@patient_bp.post("/")
@patient_required
def create():
    try:
        conversation = service.start_request(
            g.tenant,
            g.patient,
            request.form.get("practitioner"),
            request.form.get("body"),
            _uploads(),
        )
    except DomainError as exc:
        db.session.rollback()
        return _patient_index(exc, request.form, exc.status)
    db.session.commit()
    flash(_("Your message is sent."))
    return redirect(url_for(".conversation", conversation_id=conversation.id), 303)


def _patient_thread(conversation_id, error=None, form=None, status=200):
    thread = service.read_as_patient(g.patient, conversation_id)
    page = render_template(
        "messaging/patient_thread.html",
        thread=thread,
        refusal=service.may_reply(thread.conversation, g.patient),
        error=error,
        form=form or {},
        max_mb=plugin_setting(g.tenant, service.PLUGIN, "max_attachment_mb"),
    )
    db.session.commit()  # the staff's messages are read now
    return page, status


@patient_bp.get("/<conversation_id>")
@patient_required
def conversation(conversation_id):
    return _patient_thread(conversation_id)


@patient_bp.post("/<conversation_id>")
@patient_required
def reply(conversation_id):
    try:
        service.patient_reply(
            g.tenant, g.patient, conversation_id, request.form.get("body"), _uploads()
        )
    except DomainError as exc:
        db.session.rollback()
        if exc.status == 404:
            raise
        return _patient_thread(conversation_id, exc, request.form, exc.status)
    db.session.commit()
    flash(_("Your message is sent."))
    return redirect(url_for(".conversation", conversation_id=conversation_id), 303)


@patient_bp.get("/<conversation_id>/files/<attachment_id>")
@patient_required
def patient_file(conversation_id, attachment_id):
    return _download(service.attachment_for_patient(g.patient, conversation_id, attachment_id))


SHOWN_ON_HOME = 5


def patient_card(patient) -> DashboardItem:
    """The card of the patient's home page: their conversations, unread answers first."""
    conversations = service.patient_conversations(patient)
    unread = service.unread_by_patient(patient)
    conversations.sort(key=lambda c: c.id not in unread)  # stable: newest first within
    names = {p.id: p.name for p in patient.practitioners}
    lines = []
    for conversation in conversations[:SHOWN_ON_HOME]:
        if conversation.id in unread:
            state, tone = _("New message"), "attention"
        elif conversation.is_open:
            state, tone = _("Open"), ""
        else:
            state, tone = _("Closed"), ""
        name = names.get(conversation.practitioner_id) or _("Your clinic")
        lines.append(
            DashboardLine(
                text=_(
                    "%(name)s, %(date)s",
                    name=name,
                    date=format_date(conversation.last_message_at, tz=g.tenant.timezone),
                ),
                state=state,
                tone=tone,
                url=url_for("messaging_patient.conversation", conversation_id=conversation.id),
            )
        )
    return DashboardItem(
        title=_("Your messages"),
        count=len(unread),
        url=url_for("messaging_patient.index"),
        lines=tuple(lines),
        empty=_("No conversation yet: write to your practitioner from your messages."),
        order=20,
    )


# --- the staff inbox --------------------------------------------------------------------------


def _patient_filter() -> uuid.UUID | None:
    text = request.args.get("patient") or ""
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        abort(404)


@bp.get("/")
def inbox_page():
    """The inbox, newest first: filters ``show`` (all, unhandled, mine) and ``patient``;
    ``after`` is the cursor of the next page."""
    return _inbox_page()


def _inbox_page(error=None, status=200):
    show = request.args.get("show", "all")
    patient_id = _patient_filter()
    found = inbox.page(current_user, show, patient_id, request.args.get("after"))
    patient = db.session.get(Patient, (g.tenant.id, patient_id)) if patient_id else None
    if patient_id and patient is None:
        abort(404)
    return render_template(
        "messaging/inbox.html",
        page=found,
        show=show,
        patient=patient,
        filters={
            "all": _("All"),
            "unhandled": _("Unhandled"),
            "mine": _("Mine"),
        },
        inbox_state=_own_inbox(),
        practitioners=_practitioners(),
        error=error,
    ), status


def _practitioners() -> dict[str, str]:
    """The practitioners the staff member acts for (a secretary: those they work for)."""
    scope = works_for(current_user)
    return {str(p.id): p.name for p in practitioners() if scope is None or p.id in scope}


def _own_inbox():
    if current_user.role != Role.PRACTITIONER:
        return None
    return service.inbox_state(current_user.id)


def _staff_thread(conversation_id, error=None, form=None, status=200):
    thread = service.read_as_staff(current_user, conversation_id)
    if form is None and request.args.get("template"):  # "use" a template: its text, filled
        chosen = templates.find(current_user, request.args["template"])
        form = {
            "body": templates.fill(
                chosen,
                thread.patient,
                thread.practitioner,
                g.tenant,
                thread.conversation.about_appointment_id or thread.conversation.appointment_id,
            )
        }
    page = render_template(
        "messaging/thread.html",
        thread=thread,
        templates=templates.mine(current_user),
        now=utcnow(),
        blocked=service.is_blocked(thread.conversation),
        reply_modes=_reply_modes(),
        max_mb=plugin_setting(g.tenant, service.PLUGIN, "max_attachment_mb"),
        error=error,
        form=form or {},
    )
    db.session.commit()  # the read, audited, and the patient's messages read
    return page, status


def _reply_modes() -> dict[str, str]:
    return {
        ReplyMode.UNTIL_CLOSED.value: _("Allow replies until I mark it handled"),
        ReplyMode.ONCE.value: _("Allow the patient to reply once"),
        ReplyMode.NONE.value: _("No reply"),
    }


@bp.get("/<conversation_id>")
def open_conversation(conversation_id):
    """A conversation: opening it is audited, and its unread messages are read."""
    return _staff_thread(conversation_id)


@bp.post("/<conversation_id>/reply")
def staff_reply(conversation_id):
    try:
        service.staff_reply(
            g.tenant,
            current_user,
            conversation_id,
            request.form.get("body"),
            request.form.get("reply_mode"),
            request.form.get("send_at"),
            _uploads(),
        )
    except DomainError as exc:
        db.session.rollback()
        if exc.status == 404:
            raise
        return _staff_thread(conversation_id, exc, request.form, exc.status)
    db.session.commit()
    if request.form.get("send_at"):
        flash(_("Your answer is scheduled; the patient will see it, and be told, at that time."))
    else:
        flash(_("Your answer is sent; the patient is told by their usual channel."))
    return redirect(url_for(".open_conversation", conversation_id=conversation_id), 303)


@bp.post("/<conversation_id>/handled")
def handled(conversation_id):
    service.mark_handled(current_user, conversation_id)
    db.session.commit()
    flash(_("Marked handled: the conversation is closed."))
    return redirect(url_for(".inbox_page"), 303)


@bp.post("/<conversation_id>/block")
def block(conversation_id):
    blocked = request.form.get("blocked") == "yes"
    service.set_blocked(current_user, conversation_id, blocked)
    db.session.commit()
    flash(
        _("This patient can no longer write to this practitioner.")
        if blocked
        else _("This patient can write again.")
    )
    return redirect(url_for(".open_conversation", conversation_id=conversation_id), 303)


@bp.post("/<conversation_id>/delete")
def delete_conversation(conversation_id):
    """Delete a whole conversation's messages (content purged), or one (``thread_message_id``
    in the form)."""
    one = request.form.get("thread_message_id") or None
    service.delete_messages(current_user, conversation_id, one)
    db.session.commit()
    flash(_("The message is deleted.") if one else _("The conversation is deleted."))
    return redirect(url_for(".open_conversation", conversation_id=conversation_id), 303)


@bp.route("/<conversation_id>/files/<attachment_id>")
def staff_file(conversation_id, attachment_id):
    found = service.attachment_for_staff(current_user, conversation_id, attachment_id)
    db.session.commit()  # the read, audited
    return _download(found)


@bp.route("/new/<patient_id>", methods=["GET", "POST"])
def new(patient_id):
    """Write first to a patient, from their file or from an appointment (``appointment_id``
    in the query: the templates' appointment variables are that appointment's)."""
    patient = _find_patient(patient_id)
    appointment_id = request.args.get("appointment_id") or None
    error = None
    form = request.form
    if request.method == "POST":
        try:
            conversation = service.start_by_staff(
                g.tenant,
                current_user,
                patient,
                request.form.get("practitioner") or None,
                request.form.get("body"),
                request.form.get("reply_mode"),
                appointment_id,
            )
        except DomainError as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(_("Your message is sent; the patient is told by their usual channel."))
            return redirect(url_for(".open_conversation", conversation_id=conversation.id), 303)
    elif request.args.get("template"):  # "use" a template: its text, filled
        chosen = templates.find(current_user, request.args["template"])
        writer = current_user if current_user.role == Role.PRACTITIONER else None
        form = {"body": templates.fill(chosen, patient, writer, g.tenant, appointment_id)}
    page = render_template(
        "messaging/new.html",
        patient=patient,
        allowed=service.allowed_by(patient),
        practitioners=_practitioners(),
        reply_modes=_reply_modes(),
        templates=templates.mine(current_user),
        appointment_id=appointment_id,
        error=error,
        form=form,
    )
    db.session.commit()  # the audit of an appointment's reason filled in
    return page, (error.status if error else 200)


@bp.post("/new/<patient_id>/allowed")
def allow(patient_id):
    """Let the patient write first to a practitioner whatever the clinic's ``first_writers``
    (``allowed=yes``), or no longer."""
    patient = _find_patient(patient_id)
    allowed = request.form.get("allowed") == "yes"
    try:
        service.set_allowed(current_user, patient, request.form.get("practitioner"), allowed)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message)
        return redirect(url_for(".new", patient_id=patient.id), 303)
    db.session.commit()
    flash(
        _("This patient may now write first, whatever their follow-up.")
        if allowed
        else _("This patient writes first only if the clinic's rule lets them.")
    )
    return redirect(url_for(".new", patient_id=patient.id), 303)


def _find_patient(patient_id) -> Patient:
    try:
        wanted = uuid.UUID(str(patient_id))
    except ValueError:
        abort(404)
    patient = db.session.get(Patient, (g.tenant.id, wanted))
    if patient is None:
        abort(404)
    return patient


@bp.post("/closed")
def close():
    """Close an inbox with its automatic answer (``close``), or reopen it."""
    practitioner = request.form.get("practitioner") or None
    try:
        if request.form.get("action") == "reopen":
            service.reopen_inbox(current_user, practitioner)
            message = _("The inbox is open again.")
        else:
            service.close_inbox(current_user, practitioner, request.form.get("auto_answer"))
            message = _("The inbox is closed: patients read your automatic answer.")
    except DomainError as exc:
        db.session.rollback()
        return _inbox_page(exc, exc.status)
    db.session.commit()
    flash(message)
    return redirect(url_for(".inbox_page"), 303)


# --- templates --------------------------------------------------------------------------------


def _save_template(template_id: str | None) -> None:
    """Save the template the form describes: a new one when ``template_id`` is None."""
    form = request.form
    starred = form.get("starred") == "yes"
    templates.save(current_user, template_id, form.get("title"), form.get("body"), starred)


@bp.route("/templates", methods=["GET", "POST"])
def templates_page():
    """The staff member's templates, starred first, and the form of a new one."""
    error = None
    if request.method == "POST":
        try:
            _save_template(None)
        except DomainError as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(_("Template saved."))
            return redirect(url_for(".templates_page"), 303)
    page = render_template(
        "messaging/templates.html",
        templates=templates.mine(current_user),
        error=error,
        form=request.form if error else {},
        variables=templates.VARIABLES,
    )
    return page, (error.status if error else 200)


@bp.route("/templates/<template_id>", methods=["GET", "POST"])
def template_page(template_id):
    """Change a template (``action``: ``save``, ``star``, ``unstar`` or ``delete``)."""
    template = templates.find(current_user, template_id)
    error = None
    if request.method == "POST":
        action = request.form.get("action", "save")
        try:
            if action == "delete":
                templates.delete(current_user, template_id)
            elif action in ("star", "unstar"):
                templates.star(current_user, template_id, action == "star")
            else:
                _save_template(template_id)
        except DomainError as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(_("Template deleted.") if action == "delete" else _("Template saved."))
            return redirect(url_for(".templates_page"), 303)
    page = render_template(
        "messaging/template.html",
        template=template,
        error=error,
        form=request.form if error else {},
        variables=templates.VARIABLES,
    )
    return page, (error.status if error else 200)
