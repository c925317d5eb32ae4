"""Who a request is from (SPEC §4.4): the principal, the auth file that maps bearer tokens to
principals, the FastAPI dependency that finds the principal of a request, and the refusals of
one (401 for no principal, 403 for a role that does not reach). What each role may do is the
services' own (their `access` and route rules)."""

import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.rules import Role


@dataclass(frozen=True, slots=True)
class Principal:
    """Who acts: a person or a service, with a role and (for reps and managers) a team. The
    token that proved it is not part of it, so no repr or log line can carry it."""

    id: str
    role: Role
    team_id: str | None = None


class Credential(BaseModel):
    """One entry of the auth file: a bearer token and the principal who holds it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str = Field(min_length=16, repr=False, description="the bearer token; keep secret")
    id: str = Field(min_length=1, max_length=100)
    role: Role
    team_id: str | None = None

    @property
    def principal(self) -> Principal:
        return Principal(self.id, self.role, self.team_id)


class PrincipalsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    principals: tuple[Credential, ...] = Field(min_length=1)


class AuthFileError(ValueError):
    """The auth file is missing or broken; the message names the key (never a token)."""


class Principals:
    """Looks tokens up in constant time: every known token is compared, always."""

    def __init__(self, credentials: tuple[Credential, ...]) -> None:
        self._credentials = credentials
        self._entries = [(c.token.encode(), c.principal) for c in credentials]

    def by_id(self, principal_id: str) -> Principal | None:
        return next((p for _, p in self._entries if p.id == principal_id), None)

    @property
    def all(self) -> tuple[Principal, ...]:
        return tuple(principal for _, principal in self._entries)

    @property
    def credentials(self) -> tuple[Credential, ...]:
        """Every entry with its token: for the command line that prints or uses them."""
        return self._credentials

    def find(self, token: str) -> Principal | None:
        offered, found = token.encode(), None
        for known, principal in self._entries:
            if hmac.compare_digest(known, offered):
                found = principal
        return found


def load_principals(path: Path) -> Principals:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AuthFileError(f"auth file {path}: cannot be read: {exc.strerror}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise AuthFileError(f"auth file {path}: not valid JSON or YAML") from exc
    try:
        return Principals(PrincipalsFile.model_validate(data).principals)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise AuthFileError(f"auth file {path} is invalid: {problems}") from exc


DEV_PRINCIPALS = (
    ("rep-1", Role.REP, "east"),
    ("rep-2", Role.REP, "east"),
    ("rep-3", Role.REP, "west"),
    ("rep-4", Role.REP, "east"),
    ("rep-5", Role.REP, "west"),
    ("rep-6", Role.REP, "west"),
    ("manager-east", Role.MANAGER, "east"),
    ("manager-west", Role.MANAGER, "west"),
    ("admin", Role.ADMIN, None),
    ("service", Role.SERVICE, None),
    ("viewer", Role.VIEWER, None),
)


DEV_AUTH_FILE = Path("var/auth.json")


def auth_file_path(configured: Path | None) -> Path:
    """The configured auth file; unset, the dev file (written with fresh tokens if missing)."""
    if configured is not None:
        return configured
    if not DEV_AUTH_FILE.exists():
        write_dev_principals(DEV_AUTH_FILE)
    else:
        _complete_dev_principals(DEV_AUTH_FILE)
    return DEV_AUTH_FILE


def write_dev_principals(path: Path, kept: tuple[Credential, ...] = ()) -> PrincipalsFile:
    """The embedded default: one fresh random token per dev principal (those in `kept` keep
    theirs), readable by the owner only."""
    known = {c.id for c in kept}
    content = PrincipalsFile(
        principals=kept
        + tuple(
            Credential(token=secrets.token_urlsafe(24), id=pid, role=role, team_id=team)
            for pid, role, team in DEV_PRINCIPALS
            if pid not in known
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content.model_dump_json(indent=2), encoding="utf-8")
    path.chmod(0o600)
    return content


def _complete_dev_principals(path: Path) -> None:
    """A dev file written by an earlier version gains the dev principals added since; the
    tokens it holds stay as they are."""
    kept = load_principals(path).credentials
    if not {pid for pid, _, _ in DEV_PRINCIPALS} <= {c.id for c in kept}:
        write_dev_principals(path, kept)


SEND_BEARER = "send Authorization: Bearer <token>"
UNKNOWN_BEARER = "the Bearer token belongs to no principal"


class Unauthenticated(Exception):
    """No bearer token, or one no principal has (HTTP 401)."""


class Forbidden(Exception):
    """The principal's role does not allow this (HTTP 403): the message, the rule that
    refuses (e.g. `role.team`) and, when the refusal is about a parameter, its name."""

    def __init__(self, message: str, rule: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message, self.rule, self.field = message, rule, field

    @property
    def detail(self) -> dict[str, str]:
        """The `detail` of the 403 answer (SPEC §4: error, message, rule[, field])."""
        detail = {"error": "forbidden", "message": self.message, "rule": self.rule}
        if self.field is not None:
            detail["field"] = self.field
        return detail


def bearer_principal(
    find: Callable[[str], Principal | None], unknown: str = UNKNOWN_BEARER
) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the principal `find` says holds the request's bearer token; else
    `Unauthenticated`, saying `unknown` when a token came that nobody holds."""
    bearer = HTTPBearer(auto_error=False)

    async def authenticate(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        if credentials is None:
            raise Unauthenticated(SEND_BEARER)
        found = find(credentials.credentials)
        if found is None:
            raise Unauthenticated(unknown)
        return found

    return authenticate
