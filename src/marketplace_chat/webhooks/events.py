"""The event types of the webhooks. Types of the marketplace layer still to come (blocks,
reports, edits, flags) are listed so that their producers only add rows to the outbox."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    MESSAGE_CREATED = "message.created"
    MESSAGE_UNREAD = "message.unread"
    CHAT_CREATED = "chat.created"
    MESSAGE_UPDATED = "message.updated"
    MESSAGE_DELETED = "message.deleted"
    USER_BLOCKED = "user.blocked"
    USER_UNBLOCKED = "user.unblocked"
    REPORT_CREATED = "report.created"
    MESSAGE_FLAGGED = "message.flagged"
