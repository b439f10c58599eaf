"""System checks on the portal's MINT configuration (``manage.py check``; every command that
runs checks, ``mint_worker`` included, refuses to start on an error).

Settings already refuse a missing value; these catch a value that is there but cannot work,
which otherwise shows only as failed deliveries.
"""

from django.conf import settings
from django.core.checks import Error, Warning, register

from plans.mint.client import api_url_lacks_version, api_url_problem

EXAMPLE = "https://<host>/api/v1.0"


@register("mint")
def check_mint_api_url(app_configs, **kwargs) -> list:
    url = settings.MINT_API_URL
    problem = api_url_problem(url)
    if problem:
        return [
            Error(
                f"MINT_API_URL cannot be used: {problem}.",
                hint=f"Write it as {EXAMPLE}, the address your Phoenix Contact subsidiary gave.",
                id="plans.E001",
            )
        ]
    if api_url_lacks_version(url):
        return [
            Warning(
                "MINT_API_URL does not end with the API version (such as /api/v1.0).",
                hint=(
                    f"MINT's endpoints are <MINT_API_URL>/auth/token, /health/ and /plan/; "
                    f"without the version MINT answers 404. Write it as {EXAMPLE}."
                ),
                id="plans.W001",
            )
        ]
    return []
