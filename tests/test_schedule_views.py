"""Schedule and vehicle pages: happy paths, permissions, bad input, the preview, and an edit
applied only after its effect was reviewed."""

from datetime import date, time, timedelta

import pytest
from django.utils import timezone

from plans import services
from plans.models import Plan, Schedule, ScheduleException
from tests.factories import make_location, make_vehicle

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("counts_stay_true")]


def _data(vehicle, **extra):
    data = {
        "vehicle": vehicle.pk,
        "location": vehicle.home_location.pk,
        "weekdays": ["1", "2", "3", "4", "5"],
        "arrive_at": "18:30",
        "depart_at": "05:45",
        "depart_day_offset": "1",
        "target_kind": "charge",
        "expected_charge_kwh": "160",
        "valid_from": f"{timezone.now().date():%Y-%m-%d}",
        "action": "save",
    }
    data.update(extra)
    return data


@pytest.fixture
def bus():
    return make_vehicle("bus 12", location=make_location(time_zone="Europe/Berlin"))


def test_a_dispatcher_saves_a_schedule_and_its_plans_appear(dispatcher_client, bus, settings):
    settings.SCHEDULE_HORIZON_DAYS = 7
    response = dispatcher_client.post("/schedules/new/", _data(bus))
    schedule = Schedule.objects.get()
    assert response.status_code == 302
    assert response.url == f"/schedules/{schedule.pk}/"
    plans = Plan.objects.filter(schedule=schedule)
    assert plans.count() >= 4
    page = dispatcher_client.get(response.url).content.decode()
    assert "bus 12 at Brussels Depot, Mon–Fri 18:30 → 05:45 next day, 160 kWh" in page
    listing = dispatcher_client.get(f"/plans/?vehicle={bus.pk}").content.decode()
    assert "bus 12" in listing and f"/plans/{plans.first().pk}/" in listing


def test_the_preview_marks_the_dst_night_and_saves_nothing(dispatcher_client, bus):
    data = _data(
        bus,
        action="preview",
        valid_from="2027-03-22",
        valid_until="2027-04-09",
        weekdays=["5", "6"],
    )
    response = dispatcher_client.post("/schedules/new/", data)
    page = response.content.decode()
    assert response.status_code == 200
    assert "DST night: The clocks change during this stay: it lasts 10 h 15, not 11 h 15." in page
    assert "Sat 27 Mar 18:30 CET" in page and "Sun 28 Mar 05:45 CEST" in page
    assert "A time the clocks skip is moved later by the jump" in page
    assert Schedule.objects.count() == 0


def test_the_live_preview_fragment_follows_the_form(dispatcher_client, bus):
    response = dispatcher_client.post(
        "/schedules/preview/", _data(bus, valid_from="2027-10-25", weekdays=["6"])
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    assert page.strip().startswith('<div id="schedule-preview"')
    assert "it lasts 12 h 15, not 11 h 15" in page


def test_a_schedule_with_warnings_is_saved_only_with_save_anyway(dispatcher_client, settings):
    bus = make_vehicle("bus 7", battery_kwh="100", location=make_location(time_zone="UTC"))
    response = dispatcher_client.post("/schedules/new/", _data(bus))
    assert response.status_code == 200
    assert "the preview has warnings" in response.content.decode()
    assert Schedule.objects.count() == 0
    shown = response.context["form"].data["warnings_shown"]
    assert shown == "battery"
    response = dispatcher_client.post(
        "/schedules/new/", _data(bus, warnings_shown=shown, save_anyway="on")
    )
    assert response.status_code == 302


def test_bad_schedule_input_is_shown_beside_its_field(dispatcher_client, bus):
    response = dispatcher_client.post(
        "/schedules/new/",
        _data(bus, weekdays=[], arrive_at="6pm", depart_day_offset="0", depart_at="05:45"),
    )
    form = response.context["form"]
    assert form.errors["weekdays"] == ["Tick at least one weekday."]
    assert form.errors["arrive_at"] == ["Enter a 24-hour time, like 18:30."]
    response = dispatcher_client.post(
        "/schedules/new/", _data(bus, depart_day_offset="0", depart_at="05:45")
    )
    assert "must leave after it arrives" in response.context["form"].errors["depart_at"][0]
    assert Schedule.objects.count() == 0


def test_viewers_read_schedules_but_cannot_change_them(viewer_client, dispatcher, bus):
    schedule, _ = services.schedule_create(
        user=dispatcher, **{**_values(bus), "valid_from": timezone.now().date()}
    )
    assert viewer_client.get("/schedules/").status_code == 200
    page = viewer_client.get(f"/schedules/{schedule.pk}/").content.decode()
    assert "Skip the day" not in page and "/edit/" not in page
    assert viewer_client.get("/schedules/new/").status_code == 403
    assert viewer_client.get(f"/schedules/{schedule.pk}/edit/").status_code == 403
    assert viewer_client.post(f"/schedules/{schedule.pk}/end/", {}).status_code == 403
    assert viewer_client.get("/vehicles/").status_code == 200


def test_outsiders_see_no_schedules_or_vehicles(client, outsider):
    client.force_login(outsider)
    assert client.get("/schedules/").status_code == 403
    assert client.get("/vehicles/").status_code == 403


def _values(vehicle):
    return {
        "vehicle": vehicle,
        "location": vehicle.home_location,
        "weekdays": "1234567",
        "arrive_at": time(18, 30),
        "depart_at": time(5, 45),
        "depart_day_offset": 1,
        "target_kind": "charge",
        "expected_charge_kwh": 160,
        "valid_from": date.today(),
    }


def test_an_edit_is_applied_only_after_its_effect_was_reviewed(dispatcher_client, dispatcher, bus):
    schedule, _ = services.schedule_create(user=dispatcher, **_values(bus))
    edit = {**_data(bus, weekdays=[str(d) for d in range(1, 8)]), "seen_revision": "1"}
    edit["arrive_at"] = "19:00"

    review = dispatcher_client.post(f"/schedules/{schedule.pk}/edit/", {**edit, "action": "review"})
    page = review.content.decode()
    future = Plan.objects.filter(schedule=schedule, scheduled_start__gt=timezone.now()).count()
    assert f"Changes {future} plan" in page
    assert "Nothing has changed yet" in page
    reviewed = review.context["reviewed"]

    # Apply with a field changed after the review: reviewed again, nothing applied.
    again = dispatcher_client.post(
        f"/schedules/{schedule.pk}/edit/",
        {**edit, "arrive_at": "19:15", "action": "apply", "reviewed": reviewed},
    )
    assert again.status_code == 200
    schedule.refresh_from_db()
    assert schedule.arrive_at == time(18, 30)

    applied = dispatcher_client.post(
        f"/schedules/{schedule.pk}/edit/", {**edit, "action": "apply", "reviewed": reviewed}
    )
    assert applied.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.arrive_at, schedule.revision) == (time(19, 0), 2)


def test_skip_pause_lift_and_end_from_the_schedule_page(dispatcher_client, dispatcher, bus):
    schedule, _ = services.schedule_create(user=dispatcher, **_values(bus))
    day = timezone.now().date() + timedelta(days=2)
    url = f"/schedules/{schedule.pk}"
    dispatcher_client.post(
        f"{url}/except/",
        {"skip-kind": "skip", "skip-first_day": f"{day:%Y-%m-%d}", "skip-reason": "Depot closed"},
    )
    assert Plan.objects.get(schedule=schedule, occurrence_date=day).state == "withdrawn"
    response = dispatcher_client.post(
        f"{url}/except/",
        {
            "pause-kind": "pause",
            "pause-first_day": f"{day:%Y-%m-%d}",
            "pause-last_day": f"{day - timedelta(days=3):%Y-%m-%d}",
        },
    )
    assert response.status_code == 302
    assert ScheduleException.objects.count() == 1  # the backwards pause was refused
    exception = ScheduleException.objects.get()
    dispatcher_client.post(f"{url}/except/{exception.pk}/lift/")
    assert ScheduleException.objects.count() == 0
    today = f"{timezone.now().date():%Y-%m-%d}"
    asked = dispatcher_client.post(f"{url}/end/", {"last_day": today}).content.decode()
    assert "will be called off" in asked and "End the schedule after" in asked
    schedule.refresh_from_db()
    assert schedule.valid_until is None  # nothing ends until confirmed
    dispatcher_client.post(f"{url}/end/", {"last_day": today, "confirm": "yes"})
    schedule.refresh_from_db()
    assert schedule.valid_until == timezone.now().date()
    page = dispatcher_client.get(f"{url}/").content.decode()
    assert "Ended after" in page and "Skip one day" in page


def test_the_schedule_list_reads_in_a_fixed_number_of_queries(
    dispatcher_client, dispatcher, django_assert_num_queries
):
    site = make_location(time_zone="Europe/Berlin")
    for n in range(3):
        services.schedule_create(
            user=dispatcher, **_values(make_vehicle(f"bus {n}", location=site))
        )
    dispatcher_client.get("/schedules/")
    with django_assert_num_queries(9):
        first = dispatcher_client.get("/schedules/")
    for n in range(3, 9):
        services.schedule_create(
            user=dispatcher, **_values(make_vehicle(f"bus {n}", location=site))
        )
    with django_assert_num_queries(9):
        second = dispatcher_client.get("/schedules/")
    assert len(first.context["rows"]) == 3 and len(second.context["rows"]) == 9


def test_the_vehicle_page_lists_the_fleet(dispatcher_client):
    make_vehicle("bus 12", registration="B-MP 12")
    page = dispatcher_client.get("/vehicles/").content.decode()
    assert "bus 12" in page and "B-MP 12" in page and "300 kWh" in page


def test_the_edit_form_shows_times_as_typed_so_it_can_be_sent_back(
    dispatcher_client, dispatcher, bus
):
    schedule, _ = services.schedule_create(user=dispatcher, **_values(bus))
    page = dispatcher_client.get(f"/schedules/{schedule.pk}/edit/").content.decode()
    assert 'name="arrive_at" value="18:30"' in page
    assert 'name="depart_at" value="05:45"' in page


def test_an_edit_that_brings_warnings_is_applied_only_with_save_anyway(
    dispatcher_client, dispatcher, bus
):
    schedule, _ = services.schedule_create(user=dispatcher, **_values(bus))
    edit = {**_data(bus, weekdays=[str(d) for d in range(1, 8)]), "seen_revision": "1"}
    edit["expected_charge_kwh"] = "400"  # bus 12's battery is 300 kWh
    review = dispatcher_client.post(f"/schedules/{schedule.pk}/edit/", {**edit, "action": "review"})
    reviewed, shown = review.context["reviewed"], review.context["form"].data["warnings_shown"]
    assert "battery" in shown
    refused = dispatcher_client.post(
        f"/schedules/{schedule.pk}/edit/",
        {**edit, "action": "apply", "reviewed": reviewed, "warnings_shown": shown},
    )
    assert refused.status_code == 200
    assert "the preview has warnings" in refused.content.decode()
    schedule.refresh_from_db()
    assert schedule.expected_charge_kwh == 160
    applied = dispatcher_client.post(
        f"/schedules/{schedule.pk}/edit/",
        {
            **edit,
            "action": "apply",
            "reviewed": reviewed,
            "warnings_shown": shown,
            "save_anyway": "on",
        },
    )
    assert applied.status_code == 302
    schedule.refresh_from_db()
    assert schedule.expected_charge_kwh == 400


def test_a_schedule_submits_by_itself_only_for_those_who_may_submit(client, bus):
    from django.contrib.auth.models import Permission, User

    planner = User.objects.create_user("planner", password="planner-pass-123")
    planner.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_schedule", "add_schedule", "change_schedule", "view_vehicle"]
        )
    )
    client.force_login(planner)
    response = client.post("/schedules/new/", _data(bus, auto_submit="on"))
    assert response.status_code == 200
    assert "You may not send plans to MINT" in response.content.decode()
    assert Schedule.objects.count() == 0
    assert client.post("/schedules/new/", _data(bus)).status_code == 302


def test_the_preview_says_when_a_days_plan_was_called_off_or_edited_on_its_own(
    dispatcher_client, dispatcher, bus
):
    schedule, made = services.schedule_create(user=dispatcher, **_values(bus))
    plans = list(Plan.objects.filter(schedule=schedule, pk__in=made.created).order_by("pk"))
    gone, own = plans[-1], plans[-2]
    services.plan_cancel(plan=gone, user=dispatcher, reason="No driver")
    services.plan_update(plan=own, user=dispatcher, expected_charge_kwh=100)
    page = dispatcher_client.get(f"/schedules/{schedule.pk}/").content.decode()
    assert f"Plan {gone.pk} was withdrawn: this day gets no plan" in page
    assert f"Plan {own.pk} was edited on its own and keeps its own times" in page


def test_the_live_preview_names_what_keeps_it_from_showing(dispatcher_client, bus):
    data = _data(bus, depart_day_offset="0")
    del data["expected_charge_kwh"]
    page = dispatcher_client.post("/schedules/preview/", data).content.decode()
    assert "No preview yet:" in page
    assert "Expected charge (kWh): Enter the expected charge in kWh." in page
