"""Who may open the clinic's staff pages: a logged-in staff member of this clinic, and for
settings pages an admin.

Every staff area registers :func:`require_staff` before its requests; :func:`admin_only`
decorates a view (plugins' admin pages use it too).
"""

from functools import wraps

from flask import abort
from flask_login import current_user, login_required

from core.clinic.models import Role, User


@login_required
def require_staff():
    """Before a staff page: log in first; a patient's session gets a 404, as if the page did
    not exist (patients have their own pages under ``/me``)."""
    if not isinstance(current_user, User):
        abort(404)


def admin_only(view):
    """Decorate a staff view so that only the clinic's admins may use it (others get a 403)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if current_user.role != Role.ADMIN:
            abort(403)
        return view(*args, **kwargs)

    return wrapper
