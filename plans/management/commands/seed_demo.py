"""``python manage.py seed_demo``: demo sites, logins and plans for a first look at the portal.

Safe to run again: sites and users are created or updated, and plans are added only while
there are none, through ``plans.services`` like any dispatcher's plan.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from plans import services
from plans.models import Location, Plan
from plans.roles import roles_ensure
from plans.timezones import LocalTimeError, local_to_utc, utc_to_wall

SITES = [
    ("BE-BRU-01", "Brussels Depot", "Europe/Brussels", True),
    ("DE-BER-02", "Berlin Hub", "Europe/Berlin", True),
    ("US-EWR-03", "Newark Yard", "America/New_York", True),
    ("NL-AMS-04", "Amsterdam Pier (closed)", "Europe/Amsterdam", False),
]
# Demo logins for a local sandbox only; printed at the end so a newcomer can sign in.
USERS = [
    ("dispatcher", "dispatch-demo-2026", "Dispatchers", False),
    ("viewer", "viewer-demo-2026", "Viewers", False),
    ("admin", "admin-demo-2026", None, True),
]
# (site, hours from the next full hour on the site's clock, length in hours, target, submit)
PLANS = [
    ("BE-BRU-01", 2, 4, {"target_kind": "range", "expected_range_km": 280}, True),
    (
        "BE-BRU-01",
        9,
        8,
        {
            "target_kind": "range",
            "expected_range_km": 350,
            "average_consumption": Decimal("18.50"),
        },
        False,
    ),
    ("DE-BER-02", 5, 3, {"target_kind": "charge", "expected_charge_kwh": 60}, True),
    ("DE-BER-02", 20, 10, {"target_kind": "charge", "expected_charge_kwh": 120}, False),
    (
        "US-EWR-03",
        3,
        6,
        {
            "target_kind": "range",
            "expected_range_km": 410,
            "average_consumption": Decimal("21.25"),
        },
        False,
    ),
    ("US-EWR-03", 30, 12, {"target_kind": "charge", "expected_charge_kwh": 200}, False),
]


class Command(BaseCommand):
    help = "Create demo sites, the dispatcher/viewer/admin logins and a few plans (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        if settings.MINT_ENVIRONMENT == "production":
            raise CommandError(
                "seed_demo creates logins with published passwords; it refuses to run when "
                "MINT_ENVIRONMENT is production."
            )
        roles_ensure()
        for mint_id, name, zone, active in SITES:
            Location.objects.update_or_create(
                mint_location_id=mint_id,
                defaults={"name": name, "time_zone": zone, "is_active": active},
            )
        self.stdout.write(f"Sites: {', '.join(name for _, name, _, _ in SITES)}")

        users, kept = {}, set()
        User = get_user_model()
        for username, password, group_name, superuser in USERS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.is_staff = user.is_superuser = superuser
                user.set_password(password)
                user.save()
                if group_name:
                    user.groups.add(Group.objects.get(name=group_name))
            else:
                # An account of that name already exists: never touch its password or rights.
                kept.add(username)
            users[username] = user

        if Plan.objects.exists():
            self.stdout.write("Plans already exist; none added.")
        else:
            self._create_plans(users["dispatcher"])

        self.stdout.write(self.style.SUCCESS("Demo logins (sandbox only):"))
        for username, password, group_name, _ in USERS:
            role = group_name or "superuser"
            shown = "(existing account, unchanged)" if username in kept else password
            self.stdout.write(f"  {username:<11} {shown:<20} {role}")

    def _create_plans(self, user) -> None:
        now = timezone.now()
        for mint_id, hours, length, target, submit in PLANS:
            site = Location.objects.get(mint_location_id=mint_id)
            local_now = utc_to_wall(now, site.time_zone)
            next_hour = local_now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            start = _utc(next_hour + timedelta(hours=hours), site.time_zone)
            end = _utc(next_hour + timedelta(hours=hours + length), site.time_zone)
            plan = services.plan_create(
                user=user,
                location=site,
                scheduled_start=start,
                scheduled_end=end,
                reason="Demo plan from seed_demo.",
                **target,
            )
            if submit:
                services.plan_submit(plan=plan, user=user)
        self.stdout.write(f"Plans: {len(PLANS)} created ({sum(p[4] for p in PLANS)} submitted).")


def _utc(wall: datetime, zone: str) -> datetime:
    """The instant of a demo wall-clock time; one hour later if it falls in a DST change."""
    try:
        return local_to_utc(wall, zone)
    except LocalTimeError:
        return local_to_utc(wall + timedelta(hours=1), zone)
