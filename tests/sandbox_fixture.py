"""The ``mint_sandbox`` fixture: a real MINT sandbox on an ephemeral port, one per test."""

from collections.abc import Iterator

import pytest

from plans.mint.sandbox import MintSandbox

SANDBOX_CLIENT_ID = "test-client"
SANDBOX_CLIENT_SECRET = "test-secret-value"


@pytest.fixture
def mint_sandbox() -> Iterator[MintSandbox]:
    sandbox = MintSandbox(client_id=SANDBOX_CLIENT_ID, client_secret=SANDBOX_CLIENT_SECRET)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()
