"""A test feature plugin: keeps every ``relais_messaging_received`` call, with whether the
conversation's row was already in the database (flushed) at that moment."""

import sqlalchemy as sa

from core import hookimpl
from core.db import db
from plugins.features.messaging import Conversation

kind = "feature"
calls: list[tuple] = []  # (clinic slug, conversation id, new request, row flushed)


@hookimpl
def relais_messaging_received(tenant, conversation, new_request):
    with db.session.no_autoflush:
        stored = db.session.scalar(
            sa.select(Conversation.id).where(Conversation.id == conversation.id)
        )
    calls.append((tenant.slug, str(conversation.id), new_request, stored is not None))
