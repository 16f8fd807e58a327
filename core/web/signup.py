"""The main domain's pages (``<domain>/signup``): a practitioner signs their clinic up.

Routes only: parse the form, call :mod:`core.delivery.onboarding`, render. The sign-up is
limited per client address (``SIGNUP_RATE_LIMIT``); the domain limits pending sign-ups per
e-mail address and per phone.
"""

from flask import (
    Blueprint,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from core.db import db
from core.delivery import onboarding
from core.errors import Conflict, ValidationError
from core.extensions import limiter
from core.i18n import country_name
from core.web.redirects import same_host_path

bp = Blueprint("signup", __name__)
signup_limit = limiter.limit(lambda: current_app.config["SIGNUP_RATE_LIMIT"], methods=["POST"])


@bp.route("/signup", methods=["GET", "POST"])
@signup_limit
def form():
    """GET shows the form; POST creates the clinic and e-mails the invitation."""
    error = None
    if request.method == "POST":
        try:
            tenant = onboarding.sign_up(request.form)
        except (ValidationError, Conflict, onboarding.TooManySignUps) as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            session["signed_up"] = {"clinic": tenant.name, "email": tenant.signup_email}
            return redirect(url_for(".sent"))
    countries = {c.code: country_name(c.code) for c in onboarding.open_countries()}
    return render_template(
        "signup/form.html",
        countries=countries,
        error=error,
        submitted=request.form,
        fields=onboarding.FIELDS,
    ), (error.status if error else 200)


@bp.get("/signup/sent")
def sent():
    """What comes next: the e-mail's link."""
    done = session.get("signed_up")
    if not done:
        return redirect(url_for(".form"))
    return render_template("signup/sent.html", **done)


@bp.get("/signup/subdomain")
def subdomain():
    """Whether a new clinic may take ``?name=``: ``{"subdomain", "available", "message"}``."""
    slug = request.args.get("name", "")[:100].strip().lower()
    problem = onboarding.subdomain_check(slug)
    return jsonify(
        {
            "subdomain": slug,
            "available": problem is None,
            "message": problem.message if problem else None,
        }
    )


@bp.route("/language", methods=["POST"])
def language():
    """Remember the language chosen in the page footer."""
    chosen = request.form.get("lang")
    if chosen in current_app.config["LANGUAGES"]:
        session["lang"] = chosen
    return redirect(same_host_path(request.form.get("next"), url_for(".form")))
