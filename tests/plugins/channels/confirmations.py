"""A test feature plugin: a patient's "OUI" confirms an appointment (first handler wins)."""

from core import hookimpl

kind = "feature"
calls: list[tuple] = []  # (patient id, channel, text) of every reply it was handed


@hookimpl
def relais_handle_inbound(tenant, patient, channel, text):
    calls.append((patient.id if patient else None, channel, text))
    return "appointment confirmed" if text.strip().upper() == "OUI" else None
