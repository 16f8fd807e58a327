"""The callback endpoint through the API: practice software registers itself, reads its
endpoint (never the secret), rotates the secret, reads the delivery log, removes the endpoint;
private addresses refused as on the page; only live keys change it; each clinic sees its own.
And the delivery log's purge."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine

from core.clinic import apikeys
from core.clinic.models import AuditEvent
from core.db import db, new_id, utcnow
from core.delivery import sweeper
from plugins.features.callbacks import retention
from plugins.features.callbacks.models import Attempt, Event
from tenants.scoping import system_scope, tenant_scope
from tests.fakes.callback_receiver import CallbackReceiver
from tests.plugins.features.test_callbacks import (
    PLUGINS,
    allow_loopback,
    deliver_now,
    documented_verify,
    endpoints,
)
from tests.worlds import client_for, make_clinic, make_message, make_patient

API = "/api/v1/callbacks"


def key_of(app, clinic, kind="live") -> dict[str, str]:
    with app.app_context(), tenant_scope(clinic.id):
        _key, token = apikeys.create_key(f"{kind} software", kind)
        db.session.commit()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def software(app):
    """The demo clinic, its API client and a live key's header."""
    clinic = make_clinic(app, "demo", plugins=PLUGINS)
    return clinic, client_for(app, "demo"), key_of(app, clinic)


def test_software_registers_reads_rotates_and_removes_its_endpoint(app, software):
    clinic, api, key = software
    allow_loopback(app)
    verify = documented_verify()
    with CallbackReceiver() as receiver:
        assert api.get(API, headers=key).status_code == 404
        made = api.put(API, headers=key, json={"url": receiver.url})
        assert made.status_code == 201
        first = made.json["secret"]
        assert made.json["url"] == receiver.url and first.startswith("whsec_")
        read = api.get(API, headers=key)
        assert read.status_code == 200
        assert read.json["url"] == receiver.url and "secret" not in read.json
        assert first not in read.text

        rotated = api.post(f"{API}/rotate", headers=key)
        assert rotated.status_code == 200
        second = rotated.json["secret"]
        assert second != first
        assert api.get(API, headers=key).json["previous_secret_until"] is not None

        make_message(app, clinic, make_patient(app, clinic))
        deliver_now(app, clinic)
        call = receiver.received[0]
        assert verify(second, call.headers["Relais-Signature"], call.body)
        assert verify(first, call.headers["Relais-Signature"], call.body)  # for 24 hours

        log = api.get(f"{API}/deliveries", headers=key)
        assert log.status_code == 200
        assert log.json["total"] == 2 and log.json["page"] == 1
        latest = log.json["deliveries"][0]
        assert latest["status"] == "sent" and latest["status_code"] == 200
        assert latest["url"] == receiver.url and latest["error"] is None
        assert api.get(f"{API}/deliveries?page=2", headers=key).json["deliveries"] == []
        with app.app_context(), tenant_scope(clinic.id):
            reads = db.session.scalars(
                sa.select(AuditEvent.actor).where(AuditEvent.action == "callbacks.log.read")
            ).all()
        assert len(reads) == 2 and all(r.startswith("api_key:") for r in reads)

        moved = api.put(API, headers=key, json={"url": receiver.url + "/v2"})
        assert moved.status_code == 200 and "secret" not in moved.json  # the secret stays
        assert endpoints(app, clinic) == [receiver.url + "/v2"]

        assert api.delete(API, headers=key).status_code == 204
        assert api.get(API, headers=key).status_code == 404
        assert api.delete(API, headers=key).status_code == 404
        assert api.post(f"{API}/rotate", headers=key).status_code == 404


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://10.1.2.3/hook", "réseau privé"),
        ("https://127.0.0.1/hook", "réseau privé"),
        ("https://169.254.169.254/latest/meta-data", "réseau privé"),
        ("https://[::1]/hook", "réseau privé"),
        ("https://localhost/hook", "réseau privé"),  # a name resolving to loopback
        ("https://intranet.example/hook", "réseau privé"),  # a name resolving to 10.0.0.5
        ("https://nowhere.invalid/hook", "introuvable"),
        ("http://93.184.215.14/hook", "https://"),  # a public address, but not https
        ("", "https://"),
        (None, "https://"),
    ],
)
def test_private_and_unknown_addresses_are_refused_naming_url(app, software, url, says):
    clinic, api, key = software
    refused = api.put(API, headers=key, json={"url": url})
    assert refused.status_code == 422
    assert refused.json["error"]["field"] == "url"
    assert says in refused.json["error"]["message"]  # in the clinic's language
    assert endpoints(app, clinic) == []


def test_test_and_team_keys_read_but_do_not_change_the_endpoint(app, software):
    clinic, api, key = software
    assert api.put(API, headers=key, json={"url": "https://pms.example/relais"}).status_code == 201
    for kind in ("test", "team"):
        other = key_of(app, clinic, kind)
        assert api.get(API, headers=other).json["url"] == "https://pms.example/relais"
        assert api.get(f"{API}/deliveries", headers=other).status_code == 200
        moved = api.put(API, headers=other, json={"url": "https://elsewhere.example/"})
        assert moved.status_code == 403
        assert api.post(f"{API}/rotate", headers=other).status_code == 403
        assert api.delete(API, headers=other).status_code == 403
    assert endpoints(app, clinic) == ["https://pms.example/relais"]


def test_another_clinic_s_key_never_sees_this_endpoint(app, software):
    clinic, api, key = software
    assert api.put(API, headers=key, json={"url": "https://pms.example/relais"}).status_code == 201
    other = make_clinic(app, "other", plugins=PLUGINS)
    their_key = key_of(app, other)
    theirs = client_for(app, "other")
    assert theirs.get(API, headers=their_key).status_code == 404
    assert theirs.get(f"{API}/deliveries", headers=their_key).json["total"] == 0
    assert theirs.delete(API, headers=their_key).status_code == 404
    assert api.get(API, headers=their_key).status_code == 401  # their key, our address
    assert api.get(API).status_code == 401
    assert endpoints(app, clinic) == ["https://pms.example/relais"]


def test_a_clinic_without_callbacks_has_no_such_api(app):
    clinic = make_clinic(app, "plain", plugins=("fr", "outbox"))
    assert client_for(app, "plain").get(API, headers=key_of(app, clinic)).status_code == 404


# --- the delivery log's retention ------------------------------------------------------------


def _events(app, clinic, ages_and_states) -> list:
    """Events of ``clinic`` last due ``age`` ago, each with one attempt; their ids."""
    ids = []
    with app.app_context(), tenant_scope(clinic.id):
        for age, state in ages_and_states:
            at = utcnow() - age
            event = Event(
                tenant_id=clinic.id,
                id=new_id(),
                subject_id=new_id(),
                kind="message.status",
                at=at,
                payload={"status": "sent"},
                state=state,
                next_attempt_at=at,
            )
            db.session.add(event)
            db.session.flush()
            db.session.add(
                Attempt(
                    tenant_id=clinic.id,
                    event_id=event.id,
                    at=at,
                    url="https://pms.example/",
                    status_code=200,
                    latency_ms=5,
                )
            )
            ids.append(event.id)
        db.session.commit()
    return ids


def _left(app) -> tuple[set, int]:
    with app.app_context(), system_scope():
        return set(db.session.scalars(sa.select(Event.id))), db.session.scalar(
            sa.select(sa.func.count()).select_from(Attempt)
        )


def test_the_delivery_log_forgets_what_is_done_after_30_days_a_batch_a_sweep(
    app, software, monkeypatch
):
    clinic, api, key = software
    other = make_clinic(app, "other", plugins=PLUGINS)
    old, days = timedelta(days=31), timedelta(days=29)
    gone = _events(app, clinic, [(old, "delivered"), (old, "given_up")])
    gone += _events(app, other, [(old, "delivered")])
    kept = _events(app, clinic, [(days, "delivered"), (old, "waiting")])  # recent; not done
    monkeypatch.setattr(retention, "BATCH", 2)  # a pass deletes at most this many events
    with app.app_context():
        sweeper.sweep()
        assert len(_left(app)[0] & set(gone)) == 1
        sweeper.sweep()
    assert _left(app) == (set(kept), 2)
    with time_machine.travel(utcnow() + timedelta(days=2)), app.app_context():
        sweeper.sweep()  # the recent one's turn has come; a waiting event is never purged
    assert _left(app) == ({kept[1]}, 1)
