"""Fixtures of the channel plugins' tests: real provider servers on loopback."""

import pytest

from tests.fakes.twilio import FakeTwilio
from tests.plugins.channels.smtp_server import SmtpServer


@pytest.fixture
def smtp_server():
    """A real SMTP relay (aiosmtpd) on 127.0.0.1 that records every e-mail it accepts."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def fake_twilio():
    """A fake Twilio Messages API on 127.0.0.1 (tests/fakes/twilio.py); it posts its signed
    status callbacks through ``fake_twilio.post``, which a test points at the app under test
    (``AppServer.post``): without it, callbacks are recorded, never sent."""
    with FakeTwilio() as fake:
        yield fake
