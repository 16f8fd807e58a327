"""The channel contract (core.testing) run against the outbox channel and a loopback API."""

import pytest
import sqlalchemy as sa

from core.db import db
from core.testing import ChannelContract, ContractSetup, FailureMapping
from plugins.channels.outbox.plugin import OutboxDelivery, OutboxSms
from tenants.scoping import tenant_scope
from tests.core.delivery.loopback import LoopbackSms
from tests.core.delivery.loopback_api import LoopbackApi
from tests.worlds import make_clinic


class TestOutbox(ChannelContract):
    @pytest.fixture
    def contract(self, app):
        clinic = make_clinic(app, "demo", "FR", plugins=("outbox",))
        with app.app_context(), tenant_scope(clinic.id):

            def received():
                return [str(i) for i in db.session.scalars(sa.select(OutboxDelivery.message_id))]

            yield ContractSetup(
                provider=OutboxSms(),
                to="+33612345678",
                fail=None,
                received=received,
                tenant_id=clinic.id,
            )
            db.session.rollback()


class TestLoopbackApi(ChannelContract, FailureMapping):
    @pytest.fixture
    def contract(self):
        with LoopbackApi() as api:
            yield ContractSetup(
                provider=LoopbackSms(settings={"base_url": api.url}),
                to="+33612345678",
                fail=api.fail,
                received=api.references,
            )
