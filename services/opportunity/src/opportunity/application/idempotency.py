"""A command given once per `Idempotency-Key`: its first answer, saved with its events, is
what every repeat gets back."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from opportunity.application.unit_of_work import UnitOfWork, Work
from opportunity.domain.errors import InvalidValue
from opportunity.domain.ids import ID_NAMESPACE

T = TypeVar("T")


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


class KeyReused(InvalidValue):
    """The key came with another request than the one it was first used for."""

    def __init__(self) -> None:
        super().__init__("Idempotency-Key", "this Idempotency-Key was used for another request")


@dataclass(frozen=True)
class IdempotencyKey:
    principal_id: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class Answered:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


def once(
    key: IdempotencyKey,
    status_code: int,
    use: Work[T],
    render: Callable[[T], dict[str, Any]],
) -> Work[Answered]:
    """`use` as a unit of work run once per key: the first time, its answer is rendered in
    the unit of work and saved with its events (a repeat gets it byte for byte, and a repeat
    in the same batch finds it there); then the saved answer."""

    def work(uow: UnitOfWork) -> Answered:
        earlier = uow.find(IdempotentAnswer.create_id(key.principal_id, key.key), IdempotentAnswer)
        if earlier is not None:
            if earlier.fingerprint != key.fingerprint:
                raise KeyReused()
            return Answered(earlier.status_code, earlier.body, replayed=True)
        body = render(use(uow))
        uow.add(
            IdempotentAnswer(
                principal_id=key.principal_id,
                key=key.key,
                fingerprint=key.fingerprint,
                status_code=status_code,
                body=body,
            )
        )
        return Answered(status_code, body)

    return work
