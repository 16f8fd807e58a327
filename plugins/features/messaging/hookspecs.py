"""The hooks the messaging feature calls: implement them to hear of patients' messages.

The messaging plugin names this module in its ``hookspecs`` attribute; the plugin host adds
it as it registers the plugin. A plugin for which the hook is a bonus marks its
implementation ``@hookimpl(optionalhook=True)``, and then starts without messaging too.

Calls are made for a clinic (``hooks_for(tenant)``): only the plugins enabled for it answer.
"""

from core.plugin_api import hookspec

# ---------------------------------------------------------------------------------------------
# Messaging: what patients write.
# ---------------------------------------------------------------------------------------------


@hookspec
def relais_messaging_received(tenant, conversation, new_request):
    """React to a patient's message: a new request, or a reply in a conversation.

    Called by the ``messaging`` feature inside the transaction that stores the message, once
    it is flushed: what a plugin writes here commits or rolls back with it. The message's
    content is not given (it is health data): an integrator reads it as FHIR
    ``Communication`` with the clinic's API key.

    :param tenant: the clinic (:class:`tenants.models.Tenant`).
    :param conversation: the conversation (``plugins.features.messaging.Conversation``):
        ``id``, ``patient_id``, ``practitioner_id``, ``last_message_at``.
    :param new_request: True for a new request, False for a reply.
    """


@hookspec(firstresult=True)
def relais_messaging_appointment(tenant, patient, appointment_id):
    """Say which appointment a message to a patient is about, for the template variables
    ``appointment_date``, ``appointment_time`` and ``reason``.

    Called by the ``messaging`` feature when staff fill a template in, in the clinic's
    scope. The ``appointments`` feature answers (a bonus there: ``optionalhook=True``);
    without it the variables are left empty. First non-None result wins.

    :param tenant: the clinic (:class:`tenants.models.Tenant`).
    :param patient: the patient written to (:class:`core.clinic.models.Patient`).
    :param appointment_id: the appointment the conversation was started from (a UUID), or
        None: then the patient's next appointment to come, if any.
    :return: the patient's appointment (any object with ``id``, ``starts_at`` as an aware
        UTC datetime and ``reason``, which may be None), or None when there is none (an
        id that is not one of the patient's appointments gives None).
    """
