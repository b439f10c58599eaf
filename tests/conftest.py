"""The fixed cast and the real parts every test uses: users by role, the sandbox, a browser.

Test settings come from the environment (``[tool.pytest.ini_options] env`` in pyproject.toml),
so the one ``settings.py`` serves tests too.
"""

import pytest
from django.contrib.auth.models import Group, User

from plans.roles import roles_ensure

pytest_plugins = ["tests.sandbox_fixture", "tests.browser_fixture"]


@pytest.fixture(autouse=True)
def _test_settings(settings):
    """Serve static files straight from static/ so tests need no collectstatic run, and hash
    the cast's passwords cheaply (the real hasher costs ~0.4 s a user by design)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user(username: str, group: str | None = None, **extra) -> User:
    user = User.objects.create_user(username=username, password=f"{username}-pass-123", **extra)
    if group:
        if not Group.objects.filter(name=group).exists():
            roles_ensure()  # a transactional test flushed the migration's groups
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def dispatcher(db) -> User:
    return _user("dispatcher", "Dispatchers")


@pytest.fixture
def viewer(db) -> User:
    return _user("viewer", "Viewers")


@pytest.fixture
def admin_user(db) -> User:
    return _user("admin", is_staff=True, is_superuser=True)


@pytest.fixture
def outsider(db) -> User:
    """A logged-in account in no group: may see nothing but its own login."""
    return _user("outsider")


@pytest.fixture
def dispatcher_client(client, dispatcher):
    client.force_login(dispatcher)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def counts_stay_true(db):
    """After the test, the dashboard's per-state counts still match the plans themselves."""
    yield
    from django.db.models import Count

    from plans.models import Plan
    from plans.selectors import state_counts

    actual = dict(Plan.objects.order_by().values_list("state").annotate(n=Count("id")))
    counts = state_counts()
    assert {k: v for k, v in counts.items() if v} == actual
