"""The first answer to a command sent with an `Idempotency-Key`, saved with its events."""

from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from opportunity.domain import ID_NAMESPACE


class IdempotentAnswer(Aggregate):
    """One per (principal, key); a second command under the key gets this answer back."""

    @staticmethod
    def create_id(principal_id: str, key: str) -> UUID:
        return uuid5(ID_NAMESPACE, f"idempotency/{principal_id}/{key}")

    @event("Answered")
    def __init__(
        self, principal_id: str, key: str, fingerprint: str, status_code: int, body: dict[str, Any]
    ) -> None:
        self.principal_id, self.key, self.fingerprint = principal_id, key, fingerprint
        self.status_code, self.body = status_code, body
