"""A feature for which the appointments feature's hook is a bonus: it starts without it."""

from core import hookimpl

kind = "feature"
changes: list[str] = []


@hookimpl(optionalhook=True)
def relais_appointment_changed(tenant, appointment, change):
    changes.append(change)
