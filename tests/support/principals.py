"""Known test principals (one per dev principal) and a valid, unused USCC on demand."""

import random

from stdnum.cn import uscc as stdnum_uscc

from chassis.auth import DEV_PRINCIPALS, Credential, Principals

TOKENS = {pid: f"token-{pid}-0123456789abcdef" for pid, _, _ in DEV_PRINCIPALS}
PRINCIPALS = Principals(
    tuple(
        Credential(token=TOKENS[pid], id=pid, role=role, team_id=team)
        for pid, role, team in DEV_PRINCIPALS
    )
)


def auth(principal_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[principal_id]}"}


def new_uscc() -> str:
    """A valid USCC nobody else in this test session uses."""
    body = "9111" + "".join(random.choices("0123456789", k=4))
    body += "".join(random.choices("0123456789ABCDEFGHJKLMNPQRTUWXY", k=9))
    return body + stdnum_uscc.calc_check_digit(body)


def customer(tier: str = "KA", ownership: str = "SOE", **extra: str) -> dict[str, str]:
    return {
        "uscc": new_uscc(),
        "name": "ACME 有限公司",
        "tier": tier,
        "ownership": ownership,
        **extra,
    }
