"""The management commands an operator and a newcomer run by hand."""

import re
import shlex
import subprocess
import sys
from base64 import b32decode
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django_otp.oath import totp

from plans.models import Location, Plan, PlanStateCount
from plans.selectors import state_counts
from tests.factories import seed_demo


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_never_resets_an_existing_password():
    seed_demo()
    admin = User.objects.get(username="admin")
    admin.set_password("changed-by-a-person-1")
    admin.save()
    plans, sites = Plan.objects.count(), Location.objects.count()

    out = seed_demo()

    assert (Plan.objects.count(), Location.objects.count()) == (plans, sites)
    assert User.objects.get(username="admin").check_password("changed-by-a-person-1")
    assert "existing account, unchanged" in out
    assert User.objects.get(username="dispatcher").has_perm("plans.submit_plan")
    assert not User.objects.get(username="viewer").has_perm("plans.change_plan")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("debug", "builtin_sandbox", "environment"),
    [
        (False, False, "test"),
        (False, False, "production"),
        (True, False, "test"),
        (False, True, "sandbox"),
    ],
)
def test_seed_demo_creates_no_logins_outside_the_debug_sandbox_demo(
    settings, debug, builtin_sandbox, environment
):
    settings.DEBUG, settings.MINT_BUILTIN_SANDBOX = debug, builtin_sandbox
    settings.MINT_ENVIRONMENT = environment
    out = StringIO()

    call_command("seed_demo", stdout=out)

    assert not User.objects.exists()
    assert not Location.objects.exists()
    assert "No demo logins" in out.getvalue()
    assert "manage.py createsuperuser" in out.getvalue()


@pytest.mark.django_db
def test_the_demo_administrator_gets_a_printed_demo_authenticator_key(client):
    out = seed_demo()

    key = re.search(r"b32decode\('([A-Z2-7]+)'\)", out).group(1)
    command = re.search(r"\.venv/bin/python -c (\"[^\n]+\")", out).group(1)
    printed = subprocess.run(
        [sys.executable, "-c", shlex.split(command)[0]], capture_output=True, text=True, check=True
    ).stdout.strip()
    client.post("/accounts/login/", {"username": "admin", "password": "admin-demo-2026"})
    passed = client.post("/accounts/two-factor/", {"code": printed})

    assert printed == f"{totp(b32decode(key)):06d}"
    assert passed.status_code == 302
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_recount_plans_repairs_counts_that_drifted():
    seed_demo()
    PlanStateCount.objects.update(count=999)

    call_command("recount_plans", stdout=StringIO())

    assert sum(state_counts().values()) == Plan.objects.count()
