"""A customer's USCC is checked against GB 32100-2015 and refused, naming the field, when wrong."""

import pytest
from pydantic import ValidationError

from contracts.customer import Customer


def _customer(uscc: str) -> Customer:
    return Customer.model_validate(
        {"uscc": uscc, "name": "示例有限公司", "tier": "KA", "ownership": "PRIVATE"}
    )


@pytest.mark.parametrize(
    "uscc",
    [
        "91110000600037341L",  # check character a letter
        "91350100M000100Y43",  # letters in the organisation code, check character a digit
        "91310000MA1FL8KQ3E",  # letters in both
    ],
)
def test_valid_uscc_is_accepted_unchanged(uscc: str) -> None:
    assert _customer(uscc).uscc == uscc


@pytest.mark.parametrize(
    ("uscc", "problem"),
    [
        ("91110000600037341M", "check character"),
        ("91350100M000100Y44", "check character"),
        ("91110000600037341", "18 characters"),
        ("91110000600037341LL", "18 characters"),
        ("", "18 characters"),
        ("91350100M000100I43", "no I, O, S, V, Z"),
        ("91350100M000100O43", "no I, O, S, V, Z"),
        ("91350100M000100S43", "no I, O, S, V, Z"),
        ("91350100M000100V43", "no I, O, S, V, Z"),
        ("91350100M000100Z43", "no I, O, S, V, Z"),
        ("91350100m000100Y43", "no lower case"),
        ("91110000600037341l", "no lower case"),
        ("9111000060003734 L", "0-9A-HJ-NPQRTUWXY"),
        ("A1110000600037341L", "8 digits"),
    ],
)
def test_invalid_uscc_is_refused_naming_the_field(uscc: str, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _customer(uscc)
    [error] = caught.value.errors()
    assert error["loc"] == ("uscc",)
    assert problem in error["msg"]


def test_wrong_check_character_error_gives_the_expected_one() -> None:
    with pytest.raises(ValidationError, match="GB 32100-2015 gives 'L'"):
        _customer("91110000600037341M")
