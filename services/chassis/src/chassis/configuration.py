"""What a service starts with: its settings, rules file and auth file, or what is wrong
with them."""

from collections.abc import Callable
from typing import TypeVar

from pydantic import ValidationError

from chassis.auth import AuthFileError, Principals, auth_file_path, load_principals
from chassis.settings import OppstreamSettings
from contracts.rules import Rulebook, RulebookError, load_rulebook

Settings = TypeVar("Settings", bound=OppstreamSettings)


class BadConfiguration(Exception):
    """Settings, a rules file or an auth file the service cannot start with."""


def read_configuration(settings: Callable[[], Settings]) -> tuple[Settings, Rulebook, Principals]:
    """The service's settings (from the environment), its rules and its principals."""
    try:
        found = settings()
        rules = load_rulebook(found.rules_file)
        principals = load_principals(auth_file_path(found.auth_file))
    except ValidationError as exc:
        problems = "; ".join(
            f"OPPSTREAM_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise BadConfiguration(f"bad configuration: {problems}") from exc
    except (RulebookError, AuthFileError) as exc:
        raise BadConfiguration(str(exc)) from exc
    return found, rules, principals
