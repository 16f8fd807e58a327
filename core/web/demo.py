"""The demo platform ``relais demo`` sets up: France, the clinic ``demo``, staff, patients.

Running it again keeps the data and gives the demo accounts new passwords.
"""

import secrets

import sqlalchemy as sa

from core.auth import clear_failures, hash_password
from core.clinic import patients, settings, staff
from core.clinic.models import User
from core.db import db, utcnow
from core.delivery import routing
from core.delivery.providers import declared_providers
from core.plugins import hooks_for, host
from tenants import provisioning
from tenants.models import Operator, ProviderRoute, Tenant
from tenants.scoping import tenant_scope

DOMAIN = "relais.example"
STAFF = (
    ("admin", "admin@demo.example", "Camille Admin"),
    ("practitioner", "dr.martin@demo.example", "Dr Louise Martin"),
    ("secretary", "accueil@demo.example", "Hugo Accueil"),
)
PATIENTS = (
    {
        "first_name": "Jeanne",
        "last_name": "Durand",
        "phone": "06 12 34 56 78",
        "email": "jeanne.durand@example.org",
        "birth_date": "1958-03-14",
        "attributes": ["chronic_disease"],
    },
    {
        "first_name": "Lucas",
        "last_name": "Bernard",
        "phone": "07 98 76 54 32",
        "birth_date": "1991-11-02",
    },
    {
        "first_name": "Amina",
        "last_name": "Petit",
        "phone": "+33 6 55 44 33 22",
        "email": "amina.petit@example.org",
        "birth_date": "1994-07-21",
        "attributes": ["pregnancy_follow_up"],
    },
    {
        "first_name": "Paul",
        "last_name": "Moreau",
        "phone": "01 42 68 53 00",
        "birth_date": "1940-01-30",
        "attributes": ["long_term_condition", "needs_support"],
    },
)


def seed() -> list[tuple[str, str, str]]:
    """Create what is missing; returns (role, e-mail, new password) of each demo account."""
    for info in host().info.values():  # every plugin, but only France's own regulation
        if info.kind != "regulation" or info.name == "fr":
            provisioning.set_country_plugin("FR", info.name, True)
    provisioning.country("FR").self_signup = True  # <domain>/signup: clinics sign up
    if not settings.stored("FR", "fr"):
        settings.save("FR", "fr", {"stop_mention": "STOP au 36180"})  # campaigns need one
    _route_to_the_outbox()
    tenant = db.session.scalar(sa.select(Tenant).where(Tenant.slug == "demo"))
    if tenant is None:
        tenant = provisioning.create_tenant("Cabinet médical Demo", "demo", "FR")
    accounts = [_operator()]
    with tenant_scope(tenant.id):
        for role, email, name in STAFF:
            accounts.append((role, email, _staff(email, name, role)))
        if not patients.search_patients("")[1]:
            doctor = db.session.scalar(sa.select(User).where(User.email == STAFF[1][1]))
            for data in PATIENTS:
                patients.create_patient(tenant, {**data, "practitioner_ids": [doctor.id]})
        db.session.flush()
        hooks_for(tenant).relais_seed_demo(tenant=tenant)  # e.g. this week's appointments
    return accounts


def _route_to_the_outbox() -> None:
    """Real providers (Twilio, Infobip, SMTP) are enabled but have no account yet: the demo's
    messages go to the outbox page, unless the operator has routed a channel already."""
    routed = set(
        db.session.scalars(
            sa.select(ProviderRoute.channel).where(ProviderRoute.country_code == "FR")
        )
    )
    for name, declared in declared_providers().items():
        if declared.plugin == "outbox" and declared.channel not in routed:
            routing.set_route("FR", name, 1, 100)


def _operator() -> tuple[str, str, str]:
    email, password = f"operator@{DOMAIN}", _password()
    operator = db.session.scalar(sa.select(Operator).where(Operator.email == email))
    if operator is None:
        provisioning.create_operator(email, "Demo operator", password)
    else:
        operator.password_hash = hash_password(password)
    return "operator", email, password


def _staff(email: str, name: str, role: str) -> str:
    password = _password()
    user = db.session.scalar(sa.select(User).where(User.email == email))
    if user is None:
        user = staff.create_user(email, name, role, password)
        user.phone_verified_at = utcnow()  # a demo account needs no phone of its own
    else:
        user.password_hash = hash_password(password)
        clear_failures(str(user.tenant_id), email)
    return password


def _password() -> str:
    return secrets.token_urlsafe(12)
