"""The hooks the appointments feature calls: implement them to react to its agenda.

The appointments plugin names this module in its ``hookspecs`` attribute; the plugin host adds
it with ``pm.add_hookspecs`` as it registers the plugin, so these hooks exist exactly where
appointments is installed, and plugins may be registered in any order. A plugin that
implements one of them while appointments is not installed stops the start-up with an error
naming the hook: reminders, built on appointments, needs it. A plugin for which the hook is
a bonus marks its implementation ``@hookimpl(optionalhook=True)``, and then starts without
appointments too.

Calls are made for a clinic (``hooks_for(tenant)``): only the plugins enabled for it answer.
"""

from core.plugin_api import hookspec

# ---------------------------------------------------------------------------------------------
# Appointments: what happens to a clinic's agenda.
# ---------------------------------------------------------------------------------------------


@hookspec
def relais_appointment_changed(tenant, appointment, change):
    """React to an appointment booked, moved, cancelled or whose status changed.

    Called by the ``appointments`` feature inside the transaction that makes the change,
    once the row is flushed, once per change: what a plugin writes here (reminders to
    schedule or to drop) commits or rolls back with it. A change that touches nothing
    (the same appointment pushed again by practice software) calls nothing.

    :param tenant: the clinic (:class:`tenants.models.Tenant`).
    :param appointment: the appointment as it is after the change
        (``plugins.features.appointments.Appointment``): ``id``, ``patient_id``,
        ``practitioner_id``, ``starts_at`` and ``ends_at`` (aware UTC), ``status``, ``type``,
        ``location``.
    :param change: ``"created"``; ``"moved"`` when its start, end, practitioner or type
        changed (what reminders are scheduled from); ``"cancelled"``; ``"status"`` for any
        other status (confirmed, no_show, done, or booked again). One update may call the
        hook twice, ``"moved"`` then ``"status"`` or ``"cancelled"``.
    """


@hookspec
def relais_appointment_actions(tenant, user, appointment):
    """Add buttons to an appointment on the agenda (e.g. "Write to the patient").

    Called by the ``appointments`` feature for each appointment the agenda shows that is
    not cancelled, as staff view it. Keep it free of queries: the agenda shows a week.

    :param tenant: the clinic (:class:`tenants.models.Tenant`).
    :param user: the staff member viewing the agenda (:class:`core.clinic.models.User`).
    :param appointment: the appointment (``plugins.features.appointments.Appointment``):
        ``id``, ``patient_id``, ``practitioner_id``, ``starts_at``, ``type``, ``status``.
    :return: a list of :class:`core.plugins.MenuItem`: links to GET routes of the plugin's
        blueprint, built with ``url_for(endpoint, appointment_id=..., patient_id=...)``
        (arguments the route does not take go in the query string); ``roles`` limits who
        sees each.
    """
