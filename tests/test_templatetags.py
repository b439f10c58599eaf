"""The template filters that put times on a site's clock and spans into words."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from plans.templatetags.plans_extras import duration_words, percent_floor, window_local

THIS_YEAR = timezone.now().year


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (
            datetime(THIS_YEAR, 6, 1, 8, 0, tzinfo=UTC),
            datetime(THIS_YEAR, 6, 1, 12, 0, tzinfo=UTC),
            f"{datetime(THIS_YEAR, 6, 1):%a} 1 Jun 10:00 – 14:00 CEST",
        ),
        (
            datetime(THIS_YEAR + 1, 6, 1, 8, 0, tzinfo=UTC),
            datetime(THIS_YEAR + 1, 6, 1, 12, 0, tzinfo=UTC),
            f"{datetime(THIS_YEAR + 1, 6, 1):%a} 1 Jun {THIS_YEAR + 1} 10:00 – 14:00 CEST",
        ),
        (
            datetime(THIS_YEAR, 12, 31, 20, 0, tzinfo=UTC),
            datetime(THIS_YEAR + 1, 1, 1, 4, 0, tzinfo=UTC),
            f"{datetime(THIS_YEAR, 12, 31):%a} 31 Dec {THIS_YEAR} 21:00 – "
            f"{datetime(THIS_YEAR + 1, 1, 1):%a} 1 Jan {THIS_YEAR + 1} 05:00 CET",
        ),
    ],
    ids=["this year", "next year", "over new year"],
)
def test_it_shows_the_year_only_when_the_window_is_not_all_in_this_one(start, end, expected):
    assert window_local(start, end, "Europe/Brussels") == expected


@pytest.mark.parametrize(
    ("span", "words"),
    [
        (timedelta(minutes=15), "15 minutes"),
        (timedelta(minutes=1), "1 minute"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=2, minutes=30), "2 hours 30 minutes"),
        (None, ""),
    ],
)
def test_it_says_a_span_in_words(span, words):
    assert duration_words(span) == words


@pytest.mark.parametrize(
    ("share", "text"),
    [(0.29, "29%"), (1044 / 3600, "29%"), (0.57, "57%"), (0.999, "99%"), (1.0, "100%"), (0, "0%")],
)
def test_it_rounds_an_uptime_down_but_not_below_what_it_is(share, text):
    assert percent_floor(share) == text
