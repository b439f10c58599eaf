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


def totp_device(user: User):
    """A confirmed authenticator app for ``user``, as if set up on the account page."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


def login_with_second_factor(client, user: User) -> None:
    """Log ``user`` in as if password and authenticator code were both given."""
    from django_otp import DEVICE_ID_SESSION_KEY

    device = totp_device(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


@pytest.fixture
def admin_client(admin_user):
    """An administrator who gave both factors (the admin refuses one who did not); a client of
    its own, as pytest-django's, so ``client`` stays anonymous beside it."""
    from django.test import Client

    client = Client()
    login_with_second_factor(client, admin_user)
    return client


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
