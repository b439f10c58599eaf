"""``python manage.py seed_demo``: demo sites, vehicles, logins, plans and schedules for a first
look at the portal.

Only for a local demo: with ``DEBUG=1`` and the built-in MINT sandbox (``MINT_API_URL`` unset).
Anywhere else it creates nothing and says how to create an administrator, so ``make run``
against a real MINT or with ``DEBUG=0`` never gets logins with published passwords.

Safe to run again: sites and users are created or updated, and plans are added only while
there are none, through ``plans.services`` like any dispatcher's plan. The demo administrator
gets a demo authenticator whose key is printed, because administrators must use a second
factor in the demo too.
"""

from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from plans import services
from plans.models import Location, Plan, Schedule, Vehicle
from plans.roles import roles_ensure
from plans.services import totp_secret
from plans.services.guards import WARNING_CODES
from plans.timezones import LocalTimeError, local_to_utc, utc_to_wall

SITES = [
    ("BE-BRU-01", "Brussels Depot", "Europe/Brussels", True),
    ("DE-BER-02", "Berlin Hub", "Europe/Berlin", True),
    ("US-EWR-03", "Newark Yard", "America/New_York", True),
    ("NL-AMS-04", "Amsterdam Pier (closed)", "Europe/Amsterdam", False),
]
# (site, charge points, kW per point)
CHARGERS = {"BE-BRU-01": (6, "150"), "DE-BER-02": (8, "120"), "US-EWR-03": (4, "50")}
# (name, registration, battery kWh, kWh/100 km, max kW, home site)
VEHICLES = [
    *[(f"bus {n}", f"1-BUS-{n:03d}", "350", "110", "150", "BE-BRU-01") for n in range(1, 8)],
    *[(f"bus {n}", f"B-MP {n}", "300", "100", "120", "DE-BER-02") for n in range(11, 16)],
    ("van 21", "NJ EV-21", "90", "28", "50", "US-EWR-03"),
    ("van 22", "NJ EV-22", "90", "28", "50", "US-EWR-03"),
]
# Demo logins for a local sandbox only; printed at the end so a newcomer can sign in.
USERS = [
    ("dispatcher", "dispatch-demo-2026", "Dispatchers", False),
    ("viewer", "viewer-demo-2026", "Viewers", False),
    ("admin", "admin-demo-2026", None, True),
]
DEMO_DEVICE = "Demo authenticator (key printed by seed_demo)"
DEMO_CODE = (
    "  {user} also needs a code: add this demo-only key to an authenticator app\n"
    "    {key}\n"
    "  or print the current code with\n"
    '    .venv/bin/python -c "import base64, django_otp.oath as o; '
    "print('%06d' % o.totp(base64.b32decode('{raw}')))\""
)
NO_DEMO = (
    "No demo logins: seed_demo makes them only for a local demo (DEBUG=1 and MINT_API_URL unset,\n"
    "so the built-in sandbox). Create an administrator with\n"
    "  .venv/bin/python manage.py createsuperuser\n"
    "and log in: the portal asks them to set up two-step login (an authenticator app) first."
)
# (site, vehicle, hours from the next full hour on the site's clock, length in hours, target,
# submit). Van 21's 200 kWh is more than its battery: the list shows what a warning looks like.
PLANS = [
    ("BE-BRU-01", "bus 1", 2, 4, {"target_kind": "range", "expected_range_km": 280}, True),
    (
        "BE-BRU-01",
        "bus 2",
        9,
        8,
        {
            "target_kind": "range",
            "expected_range_km": 350,
            "average_consumption": Decimal("18.50"),
        },
        False,
    ),
    ("DE-BER-02", "bus 11", 5, 3, {"target_kind": "charge", "expected_charge_kwh": 60}, True),
    ("DE-BER-02", "bus 13", 20, 10, {"target_kind": "charge", "expected_charge_kwh": 120}, False),
    (
        "US-EWR-03",
        "van 22",
        3,
        6,
        {
            "target_kind": "range",
            "expected_range_km": 410,
            "average_consumption": Decimal("21.25"),
        },
        False,
    ),
    ("US-EWR-03", "van 21", 30, 12, {"target_kind": "charge", "expected_charge_kwh": 200}, False),
]
# Tomorrow at two depots, so a site's timeline shows a busy afternoon and night (with bus 3's
# and bus 12's schedules), leaving charge points free for the tests' plans: (site, vehicle or
# None, arrival tomorrow on the site's clock, length in hours, target, submit). Bus 6's 400 kWh
# is more than its battery, so one bar carries a ⚠.
CHARGE, RANGE = "expected_charge_kwh", "expected_range_km"
EVENING = [
    ("BE-BRU-01", "bus 1", time(17, 30), 12, {"target_kind": "charge", CHARGE: 160}, True),
    ("BE-BRU-01", "bus 2", time(19, 0), 10, {"target_kind": "range", RANGE: 220}, False),
    ("BE-BRU-01", "bus 6", time(18, 0), 11, {"target_kind": "charge", CHARGE: 400}, False),
    ("BE-BRU-01", "bus 7", time(13, 15), 4, {"target_kind": "charge", CHARGE: 120}, True),
    ("BE-BRU-01", None, time(14, 0), 3, {"target_kind": "charge", CHARGE: 80}, False),
    ("DE-BER-02", "bus 11", time(19, 0), 9, {"target_kind": "charge", CHARGE: 90}, True),
    ("DE-BER-02", "bus 14", time(18, 30), 10, {"target_kind": "range", RANGE: 180}, False),
]
# Two weekly schedules; the Brussels one runs past Europe's next spring-forward night, so its
# preview shows how a DST night is handled. (vehicle, site, weekdays, arrive, leave, days later,
# target, days it runs or None, submits itself)
SCHEDULES = [
    (
        "bus 3",
        "BE-BRU-01",
        "12345",
        time(18, 30),
        time(5, 45),
        1,
        {"target_kind": "charge", "expected_charge_kwh": 160},
        150,
        False,
    ),
    (
        "bus 12",
        "DE-BER-02",
        "123456",
        time(21, 0),
        time(4, 30),
        1,
        {"target_kind": "range", "expected_range_km": 220},
        None,
        True,
    ),
]


class Command(BaseCommand):
    help = "Create demo sites, the dispatcher/viewer/admin logins and a few plans (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        if not (settings.DEBUG and settings.MINT_BUILTIN_SANDBOX):
            self.stdout.write(NO_DEMO)
            return
        roles_ensure()
        for mint_id, name, zone, active in SITES:
            Location.objects.update_or_create(
                mint_location_id=mint_id,
                defaults={"name": name, "time_zone": zone, "is_active": active},
            )
        for mint_id, (points, kw) in CHARGERS.items():
            Location.objects.filter(mint_location_id=mint_id).update(
                charge_points=points, charge_point_kw=Decimal(kw)
            )
        self.stdout.write(f"Sites: {', '.join(name for _, name, _, _ in SITES)}")
        for name, registration, battery, consumption, kw, home in VEHICLES:
            Vehicle.objects.get_or_create(
                name=name,
                defaults={
                    "registration": registration,
                    "battery_kwh": Decimal(battery),
                    "default_consumption": Decimal(consumption),
                    "max_charge_kw": Decimal(kw),
                    "home_location": Location.objects.get(mint_location_id=home),
                },
            )
        self.stdout.write(f"Vehicles: {len(VEHICLES)} ({VEHICLES[0][0]} … {VEHICLES[-1][0]})")

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
                if superuser:
                    TOTPDevice.objects.create(user=user, name=DEMO_DEVICE, confirmed=True)
            else:
                # An account of that name already exists: never touch its password or rights.
                kept.add(username)
            users[username] = user

        if Plan.objects.exists():
            self.stdout.write("Plans already exist; none added.")
        else:
            self._create_plans(users["dispatcher"])
        if Schedule.objects.exists():
            self.stdout.write("Schedules already exist; none added.")
        else:
            self._create_schedules(users["dispatcher"])

        self.stdout.write(self.style.SUCCESS("Demo logins (sandbox only):"))
        for username, password, group_name, _ in USERS:
            role = group_name or "superuser"
            shown = "(existing account, unchanged)" if username in kept else password
            self.stdout.write(f"  {username:<11} {shown:<20} {role}")
        for device in TOTPDevice.objects.filter(name=DEMO_DEVICE, user__username__in=users):
            key = totp_secret(device)
            self.stdout.write(
                DEMO_CODE.format(user=device.user.get_username(), key=key, raw=key.replace(" ", ""))
            )

    def _create_plans(self, user) -> None:
        now = timezone.now()
        for mint_id, vehicle, hours, length, target, submit in PLANS:
            site = Location.objects.get(mint_location_id=mint_id)
            local_now = utc_to_wall(now, site.time_zone)
            next_hour = local_now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            start = _utc(next_hour + timedelta(hours=hours), site.time_zone)
            end = _utc(next_hour + timedelta(hours=hours + length), site.time_zone)
            plan = services.plan_create(
                user=user,
                location=site,
                vehicle=Vehicle.objects.get(name=vehicle),
                scheduled_start=start,
                scheduled_end=end,
                reason="Demo plan from seed_demo.",
                accept_warnings=WARNING_CODES,
                **target,
            )
            if submit:
                services.plan_submit(plan=plan, user=user)
        for mint_id, vehicle, arrive, length, target, submit in EVENING:
            site = Location.objects.get(mint_location_id=mint_id)
            tomorrow = utc_to_wall(now, site.time_zone).date() + timedelta(days=1)
            start = _utc(datetime.combine(tomorrow, arrive), site.time_zone)
            plan = services.plan_create(
                user=user,
                location=site,
                vehicle=Vehicle.objects.get(name=vehicle) if vehicle else None,
                scheduled_start=start,
                scheduled_end=start + timedelta(hours=length),
                reason="Demo plan from seed_demo.",
                accept_warnings=WARNING_CODES,
                **target,
            )
            if submit:
                services.plan_submit(plan=plan, user=user)
        made = [*PLANS, *EVENING]
        self.stdout.write(f"Plans: {len(made)} created ({sum(p[5] for p in made)} submitted).")

    def _create_schedules(self, user) -> None:
        today = timezone.now().date()
        made = 0
        for vehicle, site, days, arrive, leave, later, target, runs, auto in SCHEDULES:
            _, result = services.schedule_create(
                user=user,
                vehicle=Vehicle.objects.get(name=vehicle),
                location=Location.objects.get(mint_location_id=site),
                weekdays=days,
                arrive_at=arrive,
                depart_at=leave,
                depart_day_offset=later,
                valid_from=today,
                valid_until=today + timedelta(days=runs) if runs else None,
                auto_submit=auto,
                **target,
            )
            made += len(result.created)
        self.stdout.write(f"Schedules: {len(SCHEDULES)} created, {made} plans made from them.")


def _utc(wall: datetime, zone: str) -> datetime:
    """The instant of a demo wall-clock time; one hour later if it falls in a DST change."""
    try:
        return local_to_utc(wall, zone)
    except LocalTimeError:
        return local_to_utc(wall + timedelta(hours=1), zone)
