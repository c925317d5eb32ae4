"""The auth file (SPEC §4.4): bearer tokens mapped to principals with a role."""

import hmac
import json
import secrets
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.rules import Role


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str = Field(min_length=16, repr=False, description="the bearer token; keep secret")
    id: str = Field(min_length=1, max_length=100)
    role: Role
    team_id: str | None = None


class PrincipalsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    principals: tuple[Principal, ...] = Field(min_length=1)


class AuthFileError(ValueError):
    """The auth file is missing or broken; the message names the key (never a token)."""


class Principals:
    """Looks tokens up in constant time: every known token is compared, always."""

    def __init__(self, principals: tuple[Principal, ...]) -> None:
        self._entries = [(p.token.encode(), p) for p in principals]

    def by_id(self, principal_id: str) -> Principal | None:
        return next((p for _, p in self._entries if p.id == principal_id), None)

    @property
    def all(self) -> tuple[Principal, ...]:
        return tuple(principal for _, principal in self._entries)

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
    return DEV_AUTH_FILE


def write_dev_principals(path: Path) -> PrincipalsFile:
    """The embedded default: one fresh random token per dev principal, readable by the owner only."""
    content = PrincipalsFile(
        principals=tuple(
            Principal(token=secrets.token_urlsafe(24), id=pid, role=role, team_id=team)
            for pid, role, team in DEV_PRINCIPALS
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content.model_dump_json(indent=2), encoding="utf-8")
    path.chmod(0o600)
    return content
