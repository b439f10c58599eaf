"""The management commands an operator and a newcomer run by hand."""

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from plans.models import Location, Plan, PlanStateCount
from plans.selectors import state_counts


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_never_resets_an_existing_password():
    call_command("seed_demo", stdout=StringIO())
    admin = User.objects.get(username="admin")
    admin.set_password("changed-by-a-person-1")
    admin.save()
    plans, sites = Plan.objects.count(), Location.objects.count()

    out = StringIO()
    call_command("seed_demo", stdout=out)

    assert (Plan.objects.count(), Location.objects.count()) == (plans, sites)
    assert User.objects.get(username="admin").check_password("changed-by-a-person-1")
    assert "existing account, unchanged" in out.getvalue()
    assert User.objects.get(username="dispatcher").has_perm("plans.submit_plan")
    assert not User.objects.get(username="viewer").has_perm("plans.change_plan")


@pytest.mark.django_db
def test_seed_demo_refuses_production(settings):
    settings.MINT_ENVIRONMENT = "production"
    with pytest.raises(CommandError, match="refuses to run"):
        call_command("seed_demo", stdout=StringIO())
    assert not User.objects.filter(username="admin").exists()


@pytest.mark.django_db
def test_recount_plans_repairs_counts_that_drifted():
    call_command("seed_demo", stdout=StringIO())
    PlanStateCount.objects.update(count=999)

    call_command("recount_plans", stdout=StringIO())

    assert sum(state_counts().values()) == Plan.objects.count()
