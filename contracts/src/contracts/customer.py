"""The customer an opportunity is for, with the GB 32100-2015 USCC check."""

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from stdnum.cn import uscc as stdnum_uscc
from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength


class Tier(StrEnum):
    KA = "KA"
    SMB = "SMB"


class Ownership(StrEnum):
    SOE = "SOE"
    FOREIGN = "FOREIGN"
    PRIVATE = "PRIVATE"
    OTHER = "OTHER"


_USCC_FORMAT = (
    "a USCC is 8 digits then characters of 0-9A-HJ-NPQRTUWXY (no I, O, S, V, Z, no lower case)"
)


def check_uscc(value: str) -> str:
    """Return the USCC unchanged, or raise ValueError saying what is wrong with it."""
    if len(value) != 18:
        raise ValueError(f"a USCC has 18 characters, this one has {len(value)}")
    # stdnum upper-cases and drops spaces and dashes before checking; we refuse instead,
    # so what is stored is exactly what was sent.
    if stdnum_uscc.compact(value) != value:
        raise ValueError(_USCC_FORMAT)
    try:
        return str(stdnum_uscc.validate(value))
    except InvalidLength as exc:
        raise ValueError("a USCC has 18 characters") from exc
    except InvalidFormat as exc:
        raise ValueError(_USCC_FORMAT) from exc
    except InvalidChecksum as exc:
        expected = stdnum_uscc.calc_check_digit(value[:17])
        raise ValueError(
            f"the check character (the 18th) is wrong: GB 32100-2015 gives {expected!r}"
        ) from exc


Uscc = Annotated[
    str,
    Field(description="统一社会信用代码, 18 characters, GB 32100-2015 check character"),
    AfterValidator(check_uscc),
]


class GivenCustomer(BaseModel):
    """The customer as a create or a lead gives it: without `tier`, the classification rules
    of the rules file give one (SPEC §8.2)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    uscc: Uscc
    name: Annotated[str, Field(min_length=1, max_length=200)]
    tier: Tier | None = None
    ownership: Ownership
    industry: Annotated[str, Field(max_length=100)] | None = None
    region: Annotated[str, Field(max_length=100)] | None = None
    # The facts classification rules read (SPEC §8.2), when known.
    registered_capital: Annotated[Decimal, Field(ge=0, max_digits=20, decimal_places=2)] | None = (
        None
    )
    employees: Annotated[int, Field(ge=0)] | None = None
    annual_revenue: Annotated[Decimal, Field(ge=0, max_digits=20, decimal_places=2)] | None = None


class Customer(GivenCustomer):
    """The customer as an opportunity records it: its tier is always known."""

    tier: Tier
    # The classification rule that gave `tier`, or `manual` when it was given (SPEC §8.2);
    # None on opportunities recorded before classification existed.
    classified_by: Annotated[str, Field(max_length=100)] | None = None


class CustomerRef(BaseModel):
    """The customer as the order system sees it on `crm.opportunity.won`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    uscc: str
    name: str
    tier: Tier
    ownership: Ownership
