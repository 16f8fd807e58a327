"""The clinic's home page for its staff: how many patients, how many to check.

Routes only; the counting is :mod:`core.clinic.patients`.
"""

from flask import Blueprint, render_template

from core.clinic import patients
from core.web.staff_access import require_staff

bp = Blueprint("home", __name__)
bp.before_request(require_staff)


@bp.route("/")
def index():
    _, total = patients.search_patients("", page=1)
    return render_template(
        "clinic/index.html", patient_count=total, to_check=patients.count_to_check()
    )
