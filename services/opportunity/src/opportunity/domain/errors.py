"""Domain errors: each names the rule it enforces, so an entry point can answer precisely."""

from collections.abc import Iterable


class DomainError(Exception):
    """A command the rules refuse; nothing is recorded."""

    code = "refused"

    def __init__(self, message: str, **facts: object) -> None:
        super().__init__(message)
        self.message = message
        self.facts = facts


class InvalidValue(DomainError):
    """A value breaks a rule (of the SPEC or the rules file), naming the field."""

    code = "invalid_value"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)
        self.field = field


class TypeRuleBroken(InvalidValue):
    """A create's type contradicts the customer's history (SPEC §8.2), naming the rule."""

    code = "type_rule"

    def __init__(self, rule: str, message: str) -> None:
        super().__init__("type", message)
        self.facts["rule"] = rule


class CommandNotAllowed(DomainError):
    """The command is not allowed from the opportunity's status; names the ones that are."""

    code = "command_not_allowed"

    def __init__(self, command: str, status: str, allowed: Iterable[str]) -> None:
        allowed_commands = sorted(allowed)
        super().__init__(
            f"'{command}' is not allowed while the opportunity is {status}",
            command=command,
            status=status,
            allowed_commands=allowed_commands,
        )


class StageRuleBroken(DomainError):
    """A stage move the pipeline does not allow, naming the rule."""

    code = "stage_rule"

    def __init__(self, rule: str, message: str, **facts: object) -> None:
        super().__init__(message, rule=rule, **facts)


class PoolRuleBroken(DomainError):
    """A claim or an assignment a pool rule refuses (SPEC §8.3): the rule (`pool.max_held`,
    `pool.claim_limit_per_day`, `pool.previous_owner_cooldown`), the pool rule's id and the
    figures (limit, count, until)."""

    code = "pool_rule"

    def __init__(self, rule: str, rule_id: str, message: str, **figures: object) -> None:
        super().__init__(message, rule=rule, rule_id=rule_id, **figures)


class RoleNotAllowed(DomainError):
    """The actor's role may not do this, naming the rule."""

    code = "role_not_allowed"


class DuplicateOpportunity(DomainError):
    """An active opportunity for the same (uscc, type) exists."""

    code = "duplicate_opportunity"

    def __init__(self, uscc: str, type_: str, existing_id: str) -> None:
        super().__init__(
            f"an active {type_} opportunity for customer {uscc} exists already: {existing_id}",
            uscc=uscc,
            type=type_,
            existing_opportunity_id=existing_id,
        )
        self.existing_id = existing_id


class KeyPersonNotFound(DomainError):
    """No current key person of the customer has this id (never added, or removed)."""

    code = "not_found"

    def __init__(self, uscc: str, person_id: str) -> None:
        super().__init__(
            f"customer {uscc} has no key person {person_id!r}", uscc=uscc, person_id=person_id
        )


class OccurredAtRefused(DomainError):
    """An imported `occurred_at` in the future or before the last event."""

    code = "invalid_value"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="occurred_at")
        self.field = "occurred_at"


class DefinitionConflict(DomainError):
    """Something defined once (a competition) is given again with another definition."""

    code = "defined_otherwise"
