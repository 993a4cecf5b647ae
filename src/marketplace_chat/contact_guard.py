"""The contact check every text goes through before it is stored: the chat's effective policy,
the detector (skipped for texts that cannot hold a contact detail), the split-number check for
texts that may be part of a number, and the refused attempt kept for moderators.

`check_send` serves `message:send` and the REST send; `check_edit` serves `message:edit` (an
edit is not a new message in a sequence, so it has no split-number check).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

import structlog

from marketplace_chat.clock import Clock
from marketplace_chat.contact_policy import (
    Policy,
    Refusal,
    Verdict,
    could_be_number_part,
    decide,
    ends_like_number,
    starts_like_number,
    worth_scanning,
)
from marketplace_chat.contacts import ContactDetector, Finding
from marketplace_chat.errors import Unavailable
from marketplace_chat.moderation import ContactAttempt

log = structlog.get_logger(__name__)


class PolicySource(Protocol):
    async def get(self, chat_id: str) -> str | None:
        """The chat's own policy, None for the default."""
        ...


class AttemptLog(Protocol):
    async def add_contact_attempt(self, attempt: ContactAttempt) -> None: ...


class MessageAuthors(Protocol):
    async def message_author(self, message_id: str) -> tuple[str, int] | None:
        """The message's chat and sender, None for an unknown message."""
        ...


class RecentParts(Protocol):
    async def push(
        self, chat_id: str, sender_id: int, text: str, client_id: str | None, now: datetime
    ) -> list[str]: ...

    def remember(
        self, chat_id: str, sender_id: int, text: str, client_id: str | None, now: datetime
    ) -> None:
        """Push without waiting for the earlier parts."""
        ...


class ContactGuard:
    def __init__(
        self,
        detector: ContactDetector,
        default: Policy,
        policies: PolicySource,
        attempts: AttemptLog,
        recent: RecentParts | None,
        clock: Clock,
        messages: MessageAuthors | None = None,
    ) -> None:
        self._detector = detector
        self._default = default
        self._policies = policies
        self._attempts = attempts
        self._recent = recent
        self._clock = clock
        self._messages = messages

    async def policy(self, chat_id: str) -> Policy:
        own = await self._policies.get(chat_id)
        return Policy(own) if own is not None else self._default

    async def check_send(
        self, chat_id: str, sender_id: int, text: str, client_message_id: str | None = None
    ) -> Verdict:
        """What to store for this send; `ContactNotAllowed` (the attempt kept) under `block`."""
        policy = await self.policy(chat_id)
        if policy is Policy.OFF:
            return Verdict(text)
        findings = self._scan(text)
        if self._recent is not None and could_be_number_part(text):
            findings += await self._split(chat_id, sender_id, text, client_message_id)
        return await self._settle(policy, chat_id, sender_id, text, findings, client_message_id)

    async def check_edit(self, chat_id: str, sender_id: int, text: str) -> Verdict:
        """What to store as the new text of an edited message; refused like a send."""
        policy = await self.policy(chat_id)
        if policy is Policy.OFF:
            return Verdict(text)
        return await self._settle(policy, chat_id, sender_id, text, self._scan(text))

    async def screen_edit(self, user_id: int, message_id: str, text: str) -> Verdict | None:
        """`check_edit` for the chat of the caller's own message; None when the message is not
        theirs or does not exist, which the edit's own rules refuse (no attempt is kept for a
        text that could never have been stored)."""
        if self._messages is None:
            return None
        found = await self._messages.message_author(message_id)
        if found is None or found[1] != user_id:
            return None
        return await self.check_edit(found[0], user_id, text)

    def _scan(self, text: str) -> list[Finding]:
        if not worth_scanning(text):
            return []
        return list(self._detector.scan(text).findings)

    async def _split(
        self, chat_id: str, sender_id: int, text: str, client_message_id: str | None
    ) -> list[Finding]:
        assert self._recent is not None
        if not starts_like_number(text):
            # It cannot continue a number, only begin one: the next part needs it remembered,
            # this send needs nothing back, so it does not wait on Redis.
            self._recent.remember(chat_id, sender_id, text, client_message_id, self._clock.now())
            return []
        try:
            previous = await self._recent.push(
                chat_id, sender_id, text, client_message_id, self._clock.now()
            )
        except Unavailable as exc:
            # The split check is a heuristic on top of the message's own check: without Redis
            # the message is still checked on its own, and the send goes on.
            log.warning("contact_split_check_skipped", error=exc.message)
            return []
        # A number split over messages runs from the end of the previous one into this one.
        if not previous or not ends_like_number(previous[-1]) or not starts_like_number(text):
            return []
        return list(self._detector.scan_split(previous, text).findings)

    async def _settle(
        self,
        policy: Policy,
        chat_id: str,
        sender_id: int,
        text: str,
        findings: list[Finding],
        client_message_id: str | None = None,
    ) -> Verdict:
        outcome = decide(policy, text, findings)
        if isinstance(outcome, Refusal):
            await self._attempts.add_contact_attempt(
                ContactAttempt(
                    id=str(uuid.uuid4()),
                    chat_id=chat_id,
                    sender_id=sender_id,
                    text=text,
                    categories=outcome.categories,
                    created_at=self._clock.now(),
                    client_message_id=client_message_id,
                )
            )
            raise outcome.error()
        return outcome
