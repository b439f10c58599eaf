"""MINT's access token at rest: encrypted in its database row, readable through a key rotation,
and fetched afresh when the row holds nothing a configured key opens."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from plans import services
from plans.models import MintToken, Submission
from plans.token_cipher import token_decrypt
from tests.factories import make_plan
from tests.test_security import PRODUCTION_ENV, manage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def mint(settings, mint_sandbox):
    settings.MINT_API_URL = mint_sandbox.url
    settings.MINT_HEALTH_INTERVAL = 0
    return mint_sandbox


def _deliver_one(user) -> None:
    plan = make_plan(user=user)
    services.plan_submit(plan=plan, user=user)
    call_command("mint_worker", "--once")
    assert Submission.objects.get(plan=plan).state == "accepted"


def _stored() -> str:
    """The column as a backup holds it, read past the model."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_token FROM plans_minttoken WHERE id = 1")
        return cursor.fetchone()[0]


def test_it_keeps_the_token_mint_issued_only_encrypted(mint, dispatcher):
    _deliver_one(dispatcher)

    issued = list(mint._tokens)
    stored = _stored()

    assert len(issued) == 1
    assert issued[0] not in stored
    assert token_decrypt(stored) == issued[0]


def test_a_new_key_put_first_reads_the_old_token_and_writes_with_the_new(
    mint, dispatcher, settings
):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.MINT_TOKEN_KEYS = [old]
    _deliver_one(dispatcher)

    settings.MINT_TOKEN_KEYS = [new, old]
    _deliver_one(dispatcher)
    assert len(mint._tokens) == 1  # the old key still opened the stored token

    mint.set_behaviour(expire_tokens=True)
    _deliver_one(dispatcher)
    settings.MINT_TOKEN_KEYS = [new]

    assert token_decrypt(_stored()) in mint._tokens  # written with the new key alone


@pytest.mark.parametrize("unreadable", ["dropped key", "clear text from before encryption"])
def test_a_token_no_key_opens_is_fetched_afresh(mint, dispatcher, settings, unreadable):
    _deliver_one(dispatcher)
    if unreadable == "dropped key":
        settings.MINT_TOKEN_KEYS = [Fernet.generate_key().decode()]
    else:
        MintToken.objects.update(encrypted_token=next(iter(mint._tokens)))

    _deliver_one(dispatcher)

    assert len(mint._tokens) == 2
    assert token_decrypt(_stored()) in mint._tokens


def test_it_refuses_a_token_key_that_is_not_a_fernet_key():
    result = manage("check", env={**PRODUCTION_ENV, "MINT_TOKEN_KEYS": "not-a-key"})

    assert result.returncode != 0
    assert "MINT_TOKEN_KEYS holds a value that is not a Fernet key" in result.stderr
