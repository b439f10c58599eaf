"""Django admin: vehicles and sites are edited there, and the guards follow; plans and
schedules cannot be written there, so nothing bypasses the guards."""

from datetime import timedelta

import pytest
from django.utils import timezone

from plans.models import FeedToken, Plan
from plans.services import feed_token_create
from tests.conftest import login_with_second_factor
from tests.factories import make_plan, make_vehicle

pytestmark = pytest.mark.django_db


def _vehicle_form(vehicle, **changes):
    data = {
        "name": vehicle.name,
        "registration": vehicle.registration,
        "battery_kwh": str(vehicle.battery_kwh),
        "default_consumption": str(vehicle.default_consumption),
        "max_charge_kw": str(vehicle.max_charge_kw),
        "home_location": vehicle.home_location_id,
        "is_active": "on",
    }
    data.update(changes)
    return data


def test_a_smaller_battery_set_in_admin_flags_the_vehicles_coming_plans(client, admin_user):
    login_with_second_factor(client, admin_user)
    bus = make_vehicle("bus 12", battery_kwh="300")
    start = timezone.now() + timedelta(hours=2)
    plan = make_plan(
        user=admin_user,
        vehicle=bus,
        kind="charge",
        expected_charge_kwh=160,
        scheduled_start=start,
        scheduled_end=start + timedelta(hours=4),
    )
    assert plan.warnings == []

    response = client.post(
        f"/admin/plans/vehicle/{bus.pk}/change/", _vehicle_form(bus, battery_kwh="140")
    )

    assert response.status_code == 302
    plan.refresh_from_db()
    assert [w["text"] for w in plan.warnings] == [
        "Needs 160 kWh, more than bus 12's usable battery of 140 kWh."
    ]


def test_admin_refuses_a_vehicle_with_no_battery(client, admin_user):
    login_with_second_factor(client, admin_user)
    bus = make_vehicle("bus 12")
    response = client.post(
        f"/admin/plans/vehicle/{bus.pk}/change/", _vehicle_form(bus, battery_kwh="0")
    )
    assert response.status_code == 200
    assert "must be above zero" in response.content.decode()


def test_plans_and_schedules_cannot_be_written_in_admin(client, admin_user):
    login_with_second_factor(client, admin_user)
    plan = make_plan(user=admin_user)
    assert client.get("/admin/plans/plan/add/").status_code == 403
    assert client.get("/admin/plans/schedule/add/").status_code == 403
    response = client.post(f"/admin/plans/plan/{plan.pk}/change/", {"expected_range_km": "1"})
    assert response.status_code == 403
    assert Plan.objects.get().expected_range_km == 240


def test_an_administrator_revokes_a_users_calendar_token_and_its_feeds_close(
    client, admin_user, dispatcher
):
    site = make_plan(user=dispatcher).location
    made = feed_token_create(user=dispatcher, label="Depot PC")
    feed = f"/feeds/{made.secret}/sites/{site.pk}.ics"
    assert client.get(feed).status_code == 200

    login_with_second_factor(client, admin_user)
    page = client.get("/admin/plans/feedtoken/").content.decode()
    assert "Depot PC" in page and made.secret not in page
    assert client.get(f"/admin/plans/feedtoken/{made.token.pk}/change/").status_code == 200
    response = client.post(
        "/admin/plans/feedtoken/",
        {"action": "revoke", "_selected_action": [made.token.pk]},
        follow=True,
    )
    assert "1 calendar token(s) revoked" in response.content.decode()
    assert FeedToken.objects.get().revoked_at is not None
    client.logout()
    assert client.get(feed).status_code == 404
