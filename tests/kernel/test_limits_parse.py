import pytest

from campaign.config.limit import Limit, parse_limit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5/min", Limit(5, 60.0)),
        ("1000/h", Limit(1000, 3600.0)),
        ("30/10s", Limit(30, 10.0)),
        ("5/2min", Limit(5, 120.0)),
        ("100/1.5s", Limit(100, 1.5)),
        (" 60 / min ", Limit(60, 60.0)),
    ],
)
def test_parse_limit_accepts_the_documented_forms(text: str, expected: Limit) -> None:
    assert parse_limit(text) == expected


@pytest.mark.parametrize("text", ["5", "5/", "/min", "0/min", "5/0s", "5/day", "-1/min", "5/m"])
def test_parse_limit_rejects_other_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"limit|positive"):
        parse_limit(text)
