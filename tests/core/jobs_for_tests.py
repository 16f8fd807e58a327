"""Job functions the worker tests enqueue: ``jobs.enqueue(tenant, "tests.core.jobs_for_tests:f")``.

They run in the worker process, inside the job's tenant scope, as real jobs do: they take ids,
re-read state from the database, and are safe to run twice.
"""

import uuid

import sqlalchemy as sa

from core.clinic import audit
from core.clinic.models import Patient
from core.db import db


def record(action: str) -> None:
    """Leave an audit event, so a test sees that (and in which order) jobs ran."""
    audit.record(action)


def rename_patient(patient_id: str, last_name: str) -> bool:
    """Rename a patient of the job's clinic; a patient of another clinic is not found."""
    patient = db.session.scalar(sa.select(Patient).where(Patient.id == uuid.UUID(patient_id)))
    if patient is None:
        return False
    patient.last_name = last_name
    return True
