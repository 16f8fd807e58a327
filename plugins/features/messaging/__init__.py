"""Messaging: the public module other features (and tests) use.

- the tables: :class:`Conversation`, :class:`ThreadMessage`, :class:`Attachment`;
- :func:`start_request`, a patient's new request (the rules checked, nothing stored when
  refused), and :func:`staff_reply`, an answer that tells the patient.
"""

from plugins.features.messaging.models import Attachment, Conversation, ThreadMessage
from plugins.features.messaging.service import staff_reply, start_request

__all__ = ["Attachment", "Conversation", "ThreadMessage", "staff_reply", "start_request"]
