"""PlanForm: the dispatcher's rules for a plan, each error beside the field it is about."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.template.loader import render_to_string
from django.test.html import Element, parse_html
from django.utils import timezone

from plans.forms import PlanForm, mint_message_field
from tests.factories import make_location, make_plan

NEXT_YEAR = timezone.now().year + 1
WINTER_DAY = date(NEXT_YEAR, 1, 15)
SUMMER_DAY = date(NEXT_YEAR, 7, 15)
HOURS_2 = timedelta(hours=2)


def wall(day: date, hhmm: str) -> str:
    """An end typed with its own date (for a stay that ends later than the next morning)."""
    return f"{day.isoformat()} {hhmm}"


def site_window(start: datetime, end: datetime, zone: str) -> dict:
    """The date, start and end inputs for what the site's clock reads at ``start`` and ``end``
    (the end typed with its date, so the test does not depend on the hour it runs)."""
    start, end = start.astimezone(ZoneInfo(zone)), end.astimezone(ZoneInfo(zone))
    return {
        "start_date": f"{start:%Y-%m-%d}",
        "start_local": f"{start:%H:%M}",
        "end_local": f"{end:%Y-%m-%d %H:%M}",
    }


def form_data(location, /, **changes) -> dict:
    """A valid range plan for a winter day next year; ``changes`` override single inputs."""
    data = {
        "location": str(location.pk),
        "start_date": WINTER_DAY.isoformat(),
        "start_local": "10:00",
        "end_local": "14:00",
        "target_kind": "range",
        "expected_range_km": "240",
        "average_consumption": "18.5",
        "expected_charge_kwh": "",
        "status_note": "",
    }
    data.update(changes)
    return data


def charge_data(location, /, **changes) -> dict:
    return form_data(
        location,
        **{
            "target_kind": "charge",
            "expected_range_km": "",
            "average_consumption": "",
            "expected_charge_kwh": "60",
            **changes,
        },
    )


def element_by_id(html: str, element_id: str) -> Element:
    stack = [parse_html(html)]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            continue
        if dict(node.attributes).get("id") == element_id:
            return node
        stack.extend(node.children)
    raise AssertionError(f"no element with id {element_id!r}")


def text_of(node) -> str:
    if isinstance(node, str):
        return node
    return " ".join(text_of(child) for child in node.children)


@pytest.fixture
def brussels(db):
    return make_location()


@pytest.fixture
def berlin(db):
    return make_location("DE-BER-02", "Berlin Hub", "Europe/Berlin")


@pytest.fixture
def newark(db):
    return make_location("US-EWR-03", "Newark Yard", "America/New_York")


# --- the valid plan ------------------------------------------------------------------------------


def test_it_accepts_a_range_plan_and_gives_the_service_its_values(brussels):
    form = PlanForm(form_data(brussels, status_note="bus 12"))

    assert form.is_valid(), form.errors
    assert form.plan_values() == {
        "vehicle": None,
        "location": brussels,
        "scheduled_start": datetime(NEXT_YEAR, 1, 15, 9, 0, tzinfo=UTC),
        "scheduled_end": datetime(NEXT_YEAR, 1, 15, 13, 0, tzinfo=UTC),
        "target_kind": "range",
        "expected_range_km": 240,
        "average_consumption": Decimal("18.5"),
        "expected_charge_kwh": None,
        "status_note": "bus 12",
    }


def test_it_accepts_a_range_plan_without_consumption(brussels):
    form = PlanForm(form_data(brussels, average_consumption=""))

    assert form.is_valid(), form.errors
    assert form.plan_values()["average_consumption"] is None


def test_it_accepts_a_charge_plan(brussels):
    form = PlanForm(charge_data(brussels))

    assert form.is_valid(), form.errors
    values = form.plan_values()
    assert (values["target_kind"], values["expected_charge_kwh"]) == ("charge", 60)
    assert (values["expected_range_km"], values["average_consumption"]) == (None, None)


# --- target: range XOR charge --------------------------------------------------------------------


def test_it_requires_an_explicit_choice_of_range_or_charge(brussels):
    form = PlanForm(form_data(brussels, target_kind=""))

    assert not form.is_valid()
    assert form.errors == {"target_kind": ["Choose Range or Charge."]}


def test_it_preselects_neither_target_on_a_new_form(brussels):
    html = str(PlanForm()["target_kind"])

    assert html.count('type="radio"') == 2
    assert "checked" not in html


def test_it_refuses_a_target_that_is_neither_range_nor_charge(brussels):
    form = PlanForm(form_data(brussels, target_kind="both"))

    assert not form.is_valid()
    assert list(form.errors) == ["target_kind"]


def test_it_puts_a_typed_range_on_a_charge_plan_next_to_the_range_field(brussels):
    form = PlanForm(charge_data(brussels, expected_range_km="240"))

    assert not form.is_valid()
    assert form.errors == {
        "expected_range_km": ["Range is only for a range plan; clear it or choose Range."]
    }


def test_it_puts_a_typed_consumption_on_a_charge_plan_next_to_the_consumption_field(brussels):
    form = PlanForm(charge_data(brussels, average_consumption="18.5"))

    assert not form.is_valid()
    assert form.errors == {
        "average_consumption": [
            "Average consumption is only for a range plan; clear it or choose Range."
        ]
    }


@pytest.mark.parametrize(
    ("target_kind", "expected_errors"),
    [
        (
            "range",
            {
                "expected_charge_kwh": [
                    "Charge is only for a charge plan; clear it or choose Charge."
                ]
            },
        ),
        (
            "charge",
            {
                "expected_range_km": ["Range is only for a range plan; clear it or choose Range."],
                "average_consumption": [
                    "Average consumption is only for a range plan; clear it or choose Range."
                ],
            },
        ),
    ],
)
def test_it_refuses_both_targets_with_errors_next_to_the_other_targets_fields(
    brussels, target_kind, expected_errors
):
    data = form_data(brussels, target_kind=target_kind, expected_charge_kwh="60")

    form = PlanForm(data)

    assert not form.is_valid()
    assert form.errors == expected_errors


@pytest.mark.parametrize(
    ("data_builder", "expected_errors"),
    [
        (
            lambda loc: form_data(loc, expected_range_km="", average_consumption=""),
            {"expected_range_km": ["Enter the expected range in km."]},
        ),
        (
            lambda loc: charge_data(loc, expected_charge_kwh=""),
            {"expected_charge_kwh": ["Enter the expected charge in kWh."]},
        ),
        (
            lambda loc: form_data(loc, location=""),
            {"location": ["Choose the site the vehicle will be at."]},
        ),
        (
            lambda loc: form_data(loc, start_date=""),
            {"start_date": ["Enter the day the vehicle arrives, like 2025-11-25."]},
        ),
        (
            lambda loc: form_data(loc, start_local=""),
            {"start_local": ["Enter when the vehicle arrives, like 18:30."]},
        ),
        (
            lambda loc: form_data(loc, end_local=""),
            {"end_local": ["Enter when the vehicle leaves, like 05:45."]},
        ),
    ],
    ids=["range", "charge", "site", "date", "start", "end"],
)
def test_it_asks_for_a_missing_value_next_to_its_field(brussels, data_builder, expected_errors):
    form = PlanForm(data_builder(brussels))

    assert not form.is_valid()
    assert form.errors == expected_errors


def test_it_refuses_a_consumption_without_a_range(brussels):
    form = PlanForm(form_data(brussels, expected_range_km="", average_consumption="18.5"))

    assert not form.is_valid()
    assert form.errors == {"expected_range_km": ["Enter the expected range in km."]}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("expected_range_km", "0", "The range must be above 0 km."),
        ("expected_range_km", "-5", "The range must be above 0 km."),
        ("average_consumption", "0", "The consumption must be above 0."),
        ("average_consumption", "-18.5", "The consumption must be above 0."),
        ("expected_charge_kwh", "0", "The charge must be above 0 kWh."),
        ("expected_charge_kwh", "-60", "The charge must be above 0 kWh."),
    ],
)
def test_it_refuses_a_number_that_is_not_above_zero(brussels, field, value, message):
    builder = charge_data if field == "expected_charge_kwh" else form_data
    form = PlanForm(builder(brussels, **{field: value}))

    assert not form.is_valid()
    assert form.errors == {field: [message]}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("expected_range_km", "12.5", "Enter a whole number of kilometres."),
        ("average_consumption", "18.555", "Use at most two decimals."),
        ("average_consumption", "many", "Enter a number, like 18.5."),
        ("start_local", "tomorrow at ten", "Enter a 24-hour time, like 18:30."),
    ],
)
def test_it_explains_a_number_or_time_it_cannot_read(brussels, field, value, message):
    form = PlanForm(form_data(brussels, **{field: value}))

    assert not form.is_valid()
    assert form.errors[field] == [message]


def test_it_refuses_a_site_that_is_no_longer_active(db):
    closed = make_location("NL-AMS-04", "Amsterdam Pier", "Europe/Amsterdam", is_active=False)

    form = PlanForm(form_data(closed))

    assert not form.is_valid()
    assert list(form.errors) == ["location"]


# --- times ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("end", ["10:00", "09:59"], ids=["equal", "before"])
def test_it_puts_an_end_dated_not_after_the_start_on_the_end_field(brussels, end):
    form = PlanForm(form_data(brussels, end_local=wall(WINTER_DAY, end)))

    assert not form.is_valid()
    assert form.errors == {"end_local": ["The end must be after the start."]}


def test_it_refuses_a_bare_end_time_equal_to_the_start_rather_than_guess_a_day(brussels):
    form = PlanForm(form_data(brussels, end_local="10:00"))

    assert not form.is_valid()
    assert form.errors == {
        "end_local": [
            "The end is the same time as the start. For a stay of a day or more, type the "
            f"end's date too, like {WINTER_DAY + timedelta(days=1):%Y-%m-%d} 10:00."
        ]
    }


def test_it_refuses_a_window_that_has_already_ended(brussels):
    now = timezone.now()
    data = form_data(
        brussels,
        **site_window(now - timedelta(hours=5), now - timedelta(hours=1), brussels.time_zone),
    )

    form = PlanForm(data)

    assert not form.is_valid()
    assert form.errors == {
        "end_local": ["This window has already ended; a plan must end in the future."]
    }


@pytest.mark.parametrize(
    ("field", "typed", "year"),
    [
        ("start_date", f"0026-{WINTER_DAY:%m-%d}", "0026"),  # "26" typed for the year
        ("start_date", "0001-01-01", "0001"),  # the calendar's first day, before UTC's first minute
        ("start_date", f"15.01.{NEXT_YEAR + 20}", f"{NEXT_YEAR + 20}"),
        ("end_local", f"{NEXT_YEAR + 20}-01-15 14:00", f"{NEXT_YEAR + 20}"),
    ],
)
def test_it_refuses_a_year_far_from_today_on_that_field(brussels, field, typed, year):
    form = PlanForm(form_data(brussels, start_local="00:00", **{field: typed}))

    assert not form.is_valid()
    assert form.errors == {field: [f"Check the year: {year} is too far from today."]}


def test_it_refuses_a_window_longer_than_a_week_on_the_end_field(brussels):
    week_later = WINTER_DAY + timedelta(days=7)
    ok = PlanForm(form_data(brussels, end_local=wall(week_later, "10:00")))
    too_long = PlanForm(form_data(brussels, end_local=wall(week_later, "10:01")))

    assert ok.is_valid(), ok.errors
    assert not too_long.is_valid()
    assert too_long.errors == {
        "end_local": ["A plan covers at most 7 days; check the dates and the year."]
    }


def test_it_measures_a_weeks_window_on_the_sites_clock_across_a_clock_change(brussels):
    """Thursday 08:00 to the next Thursday 08:00 over the October change is 7 days on the
    site's clock (7 days and an hour in UTC)."""
    today = timezone.now().date()
    year = today.year if date(today.year, 10, 20) > today else today.year + 1
    last = date(year, 10, 31)
    clocks_go_back = last - timedelta(days=(last.weekday() + 1) % 7)
    thursday = clocks_go_back - timedelta(days=3)
    week_later = thursday + timedelta(days=7)

    start = {"start_date": thursday.isoformat(), "start_local": "08:00"}
    ok = PlanForm(form_data(brussels, **start, end_local=wall(week_later, "08:00")))
    too_long = PlanForm(form_data(brussels, **start, end_local=wall(week_later, "08:01")))

    assert ok.is_valid(), ok.errors
    assert too_long.errors == {
        "end_local": ["A plan covers at most 7 days; check the dates and the year."]
    }


def test_it_accepts_a_window_that_started_already_and_ends_later(brussels):
    now = timezone.now()
    data = form_data(
        brussels,
        **site_window(now - timedelta(hours=2), now + timedelta(hours=2), brussels.time_zone),
    )

    form = PlanForm(data)

    assert form.is_valid(), form.errors
    assert form.cleaned_data["scheduled_start"] < now < form.cleaned_data["scheduled_end"]


CHANGE = "Choose a time before or after the change."


@pytest.mark.parametrize(
    ("zone", "typed", "message"),
    [
        (
            "Europe/Brussels",
            "2026-03-29T02:30",
            "2026-03-29 02:30 does not exist in Europe/Brussels: the clocks jump forward then. "
            + CHANGE,
        ),
        (
            "Europe/Brussels",
            "2026-10-25T02:30",
            "2026-10-25 02:30 happens twice in Europe/Brussels: the clocks go back then. " + CHANGE,
        ),
        (
            "America/New_York",
            "2026-03-08T02:15",
            "2026-03-08 02:15 does not exist in America/New_York: the clocks jump forward then. "
            + CHANGE,
        ),
    ],
    ids=["brussels-gap", "brussels-overlap", "new-york-gap"],
)
@pytest.mark.parametrize("field", ["start_local", "end_local"])
def test_it_refuses_a_time_in_a_daylight_saving_change_on_that_field(
    db, zone, typed, message, field
):
    site = make_location(f"DST-{zone}", f"Site in {zone}", zone)
    day, at = typed.split("T")
    # The other time is a plain one on the same day; a time that names no single instant is
    # refused on its own field before the window as a whole is judged.
    times = {"start_date": day, "start_local": "00:00", "end_local": "12:00", field: at}
    data = form_data(site, **times)

    form = PlanForm(data)

    assert not form.is_valid()
    assert form.errors == {field: [message]}


@pytest.mark.parametrize(
    ("day", "berlin_utc", "new_york_utc"),
    [(WINTER_DAY, 9, 15), (SUMMER_DAY, 8, 14)],
    ids=["winter", "summer"],
)
def test_it_converts_the_same_wall_clock_to_utc_in_each_sites_zone(
    berlin, newark, day, berlin_utc, new_york_utc
):
    typed = {"start_date": day.isoformat(), "start_local": "10:00", "end_local": "12:30"}
    at_berlin = PlanForm(form_data(berlin, **typed))
    at_newark = PlanForm(form_data(newark, **typed))

    assert at_berlin.is_valid(), at_berlin.errors
    assert at_newark.is_valid(), at_newark.errors
    utc_day = (day.year, day.month, day.day)
    assert at_berlin.cleaned_data["scheduled_start"] == datetime(*utc_day, berlin_utc, tzinfo=UTC)
    assert at_berlin.cleaned_data["scheduled_end"] == datetime(
        *utc_day, berlin_utc + 2, 30, tzinfo=UTC
    )
    assert at_newark.cleaned_data["scheduled_start"] == datetime(*utc_day, new_york_utc, tzinfo=UTC)
    assert at_newark.cleaned_data["scheduled_end"] == datetime(
        *utc_day, new_york_utc + 2, 30, tzinfo=UTC
    )


def test_it_shows_a_plans_times_back_on_its_sites_clock(newark, dispatcher):
    start = datetime(NEXT_YEAR, 7, 16, 3, 30, tzinfo=UTC)
    plan = make_plan(
        user=dispatcher, location=newark, scheduled_start=start, scheduled_end=start + HOURS_2
    )

    initial = PlanForm.initial_from_plan(plan)

    assert initial["start_date"] == date(NEXT_YEAR, 7, 15)
    assert initial["start_local"] == time(23, 30)
    assert initial["end_local"] == "01:30"  # earlier than the start: the next day
    assert initial["location"] == newark


def test_it_shows_an_end_more_than_a_night_away_with_its_date_and_reads_it_back(
    brussels, dispatcher
):
    start = datetime(NEXT_YEAR, 1, 15, 17, 30, tzinfo=UTC)  # 18:30 in Brussels
    overnight = make_plan(
        user=dispatcher,
        location=brussels,
        scheduled_start=start,
        scheduled_end=start + timedelta(hours=11, minutes=15),
    )
    longer = make_plan(
        user=dispatcher,
        location=brussels,
        scheduled_start=start,
        scheduled_end=start + timedelta(hours=25),
    )

    assert PlanForm.initial_from_plan(overnight)["end_local"] == "05:45"
    assert PlanForm.initial_from_plan(longer)["end_local"] == f"{NEXT_YEAR}-01-16 19:30"
    for plan in (overnight, longer):
        initial = PlanForm.initial_from_plan(plan)
        form = PlanForm(
            form_data(
                brussels,
                start_date=f"{initial['start_date']:%Y-%m-%d}",
                start_local=f"{initial['start_local']:%H:%M}",
                end_local=initial["end_local"],
            )
        )
        assert form.is_valid(), form.errors
        assert form.cleaned_data["scheduled_end"] == plan.scheduled_end


# --- quick entry: the day, 24-hour times, overnight ends ------------------------------------------


def test_it_reads_an_end_earlier_than_the_start_as_the_next_day(brussels):
    form = PlanForm(form_data(brussels, start_local="18:30", end_local="05:45"))

    assert form.is_valid(), form.errors
    assert form.cleaned_data["scheduled_start"] == datetime(NEXT_YEAR, 1, 15, 17, 30, tzinfo=UTC)
    assert form.cleaned_data["scheduled_end"] == datetime(NEXT_YEAR, 1, 16, 4, 45, tzinfo=UTC)
    friday = date(NEXT_YEAR, 1, 16)
    assert form.end_note == f"Ends the next day: {friday:%a} 16 Jan 05:45 CET"


def test_it_says_nothing_about_the_day_of_an_end_on_the_same_day(brussels):
    form = PlanForm(form_data(brussels))

    assert form.is_valid(), form.errors
    assert form.end_note == ""


def test_it_takes_an_end_with_its_own_date_for_a_stay_over_a_day(brussels):
    form = PlanForm(form_data(brussels, start_local="18:30", end_local=f"17.01.{NEXT_YEAR} 06:00"))

    assert form.is_valid(), form.errors
    assert form.cleaned_data["scheduled_end"] == datetime(NEXT_YEAR, 1, 17, 5, 0, tzinfo=UTC)
    assert form.end_note == f"Ends 2 days later: {date(NEXT_YEAR, 1, 17):%a} 17 Jan 06:00 CET"


@pytest.mark.parametrize(
    ("field", "typed"),
    [
        ("start_date", f"15.01.{NEXT_YEAR}"),
        ("start_date", f"15.1.{NEXT_YEAR}"),
        ("start_local", "1000"),
        ("start_local", "10.00"),
        ("start_local", "10:00"),
        ("end_local", "1400"),
        ("end_local", f"{WINTER_DAY.isoformat()} 14:00"),
        ("end_local", f"{WINTER_DAY.isoformat()}T14:00"),
        ("end_local", f"15.01.{NEXT_YEAR} 14.00"),
    ],
)
def test_it_accepts_the_ways_people_type_a_day_and_a_time(brussels, field, typed):
    form = PlanForm(form_data(brussels, **{field: typed}))

    assert form.is_valid(), form.errors
    assert form.cleaned_data["scheduled_start"] == datetime(NEXT_YEAR, 1, 15, 9, tzinfo=UTC)
    assert form.cleaned_data["scheduled_end"] == datetime(NEXT_YEAR, 1, 15, 13, tzinfo=UTC)


DAY_FORMAT = "Enter the date as YYYY-MM-DD or DD.MM.YYYY, like 2025-11-25."
TIME_FORMAT = "Enter a 24-hour time, like 18:30."
END_FORMAT = "Enter a 24-hour time like 05:45, or a date and time like 2025-11-27 05:45."


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("start_date", f"01/15/{NEXT_YEAR}", DAY_FORMAT),  # month first: not guessed
        ("start_date", f"{NEXT_YEAR}-02-30", DAY_FORMAT),
        ("start_date", "tomorrow", DAY_FORMAT),
        ("start_local", "25:00", TIME_FORMAT),
        ("start_local", "6pm", TIME_FORMAT),
        ("start_local", "6:00 PM", TIME_FORMAT),
        ("start_local", "18:3", TIME_FORMAT),
        ("end_local", "5:45 tomorrow", END_FORMAT),
        ("end_local", f"{NEXT_YEAR}/01/16 05:45", END_FORMAT),
        ("end_local", "24:00", END_FORMAT),
        ("end_local", "+1 05:45", END_FORMAT),
    ],
)
def test_it_says_how_to_type_a_day_or_time_it_cannot_read_next_to_that_field(
    brussels, field, typed, message
):
    form = PlanForm(form_data(brussels, **{field: typed}))

    assert not form.is_valid()
    assert form.errors == {field: [message]}


@pytest.mark.parametrize(
    ("month", "start", "message"),
    [
        (3, "22:00", "does not exist in Europe/Brussels: the clocks jump forward then."),
        (10, "20:00", "happens twice in Europe/Brussels: the clocks go back then."),
    ],
    ids=["gap", "overlap"],
)
def test_it_refuses_an_overnight_end_in_a_daylight_saving_change_with_its_real_date(
    brussels, month, start, message
):
    last = date(NEXT_YEAR, month, 31)
    change = last - timedelta(days=(last.weekday() + 1) % 7)  # the last Sunday
    saturday = change - timedelta(days=1)

    form = PlanForm(
        form_data(brussels, start_date=saturday.isoformat(), start_local=start, end_local="02:30")
    )

    assert not form.is_valid()
    assert form.errors == {
        "end_local": [f"{change.isoformat()} 02:30 {message} {CHANGE}"],
    }


def test_it_types_the_times_as_text_whatever_the_browsers_locale(brussels):
    html = "".join(str(PlanForm()[name]) for name in ("start_date", "start_local", "end_local"))

    assert "datetime-local" not in html
    assert 'type="date"' not in html
    assert 'placeholder="2025-11-25"' in html
    assert 'placeholder="18:30"' in html
    assert 'placeholder="05:45"' in html
    assert 'inputmode="numeric"' in html
    assert html.count("pattern=") == 3


# --- MINT's 400 messages -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("expectedRange: must be a positive integer (km).", "expected_range_km"),
        ("expectedCharge: must be a positive integer (kWh).", "expected_charge_kwh"),
        ("averageConsumption: is only allowed with expectedRange.", "average_consumption"),
        ("scheduledStartTime: must be written as YYYY-MM-DDTHH:MM:SSZ.", "start_local"),
        ("scheduledEndTime: must be after scheduledStartTime.", "end_local"),
        ("locationId: is required.", "location"),
        ("Unknown locationId 'XX-NOPE'.", "location"),
        ("status: must be a string (it may be empty).", "status_note"),
        ("Use either expectedRange or expectedCharge, not both.", None),
        ("Request body must be a JSON object.", None),
    ],
)
def test_it_finds_the_field_a_mint_message_is_about(message, field):
    assert mint_message_field(message) == field


def test_it_shows_mints_messages_next_to_the_matching_fields(brussels):
    messages = [
        "expectedRange: too far for this site.",
        "Unknown locationId 'BE-BRU-01'.",
        "Use either expectedRange or expectedCharge, not both.",
    ]

    form = PlanForm(form_data(brussels), mint_messages=messages)

    assert form.has_mint_messages
    assert form.fields["expected_range_km"].mint_notes == [messages[0]]
    assert form.fields["location"].mint_notes == [messages[1]]
    assert form.mint_top_messages == [messages[2]]
    assert form.fields["expected_charge_kwh"].mint_notes == []
    range_html = render_to_string(
        "plans/partials/_field.html", {"field": form["expected_range_km"]}
    )
    block = element_by_id(range_html, "field-expected_range_km")
    notes = element_by_id(range_html, "id_expected_range_km_mint")
    assert "field-invalid" in dict(block.attributes)["class"]
    assert text_of(notes) == "MINT rejected: expectedRange: too far for this site."
    assert "id_expected_range_km_mint" in str(form["expected_range_km"])
    charge_html = render_to_string(
        "plans/partials/_field.html", {"field": form["expected_charge_kwh"]}
    )
    assert "MINT rejected" not in charge_html


@pytest.mark.parametrize(
    ("note", "code"),
    [("bus 12\u202e21 sub", "U+202E"), ("ring\u0007", "U+0007"), ("two\nlines", "U+000A")],
    ids=["direction override", "bell", "newline"],
)
def test_it_refuses_invisible_characters_in_the_note_to_mint(brussels, note, code):
    form = PlanForm(form_data(brussels, status_note=note))

    assert not form.is_valid()
    assert form.errors == {
        "status_note": [
            f"Remove the invisible character {code}: the note must be plain text on one line."
        ]
    }


def test_it_accepts_a_note_in_any_language(brussels):
    form = PlanForm(form_data(brussels, status_note="Bus 12 – Gare du Midi, quai ③ 🚌 日本"))

    assert form.is_valid(), form.errors
