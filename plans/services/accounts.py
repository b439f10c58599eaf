"""Accounts: the second factor (a TOTP authenticator app and one-time recovery codes) and the
audit log of logins.

django-otp keeps the devices: one ``TOTPDevice`` (the app) and one ``StaticDevice`` (the
recovery codes) per user. Administrators must have them; anyone else may. A recovery code works
once, in place of the app's code, and is shown only when it is made.
"""

import logging
from base64 import b32encode

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest
from django_otp import devices_for_user, user_has_device, verify_token
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

log = logging.getLogger("plans.accounts")

RECOVERY_CODE_COUNT = 10
APP_DEVICE_NAME = "Authenticator app"
RECOVERY_DEVICE_NAME = "Recovery codes"


def second_factor_required(user: AbstractBaseUser) -> bool:
    """Administrators may not work without a second factor; others choose."""
    return user.is_staff or user.is_superuser


def second_factor_enabled(user: AbstractBaseUser) -> bool:
    return user_has_device(user, confirmed=True)


def totp_secret(device: TOTPDevice) -> str:
    """The key as authenticator apps take it when typed in: base32, in groups of four."""
    text = b32encode(device.bin_key).decode()
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def totp_device_start(*, user: AbstractBaseUser) -> TOTPDevice:
    """The user's authenticator being set up: a new key, unconfirmed until a code proves the
    app has it. Reloading the page keeps the same key, so a scanned code stays valid."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    return device or TOTPDevice.objects.create(user=user, name=APP_DEVICE_NAME, confirmed=False)


@transaction.atomic
def totp_device_confirm(*, user: AbstractBaseUser, device: TOTPDevice, code: str) -> list[str]:
    """Confirm the app if ``code`` is its current code: it replaces any earlier app, and new
    recovery codes replace the old ones. Returns the recovery codes (empty: wrong code)."""
    if device.user_id != user.pk or device.confirmed or not device.verify_token(code.strip()):
        return []
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return recovery_codes_renew(user=user)


@transaction.atomic
def recovery_codes_renew(*, user: AbstractBaseUser) -> list[str]:
    """New one-time recovery codes; the old ones stop working."""
    static, _ = StaticDevice.objects.get_or_create(user=user, name=RECOVERY_DEVICE_NAME)
    static.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=static, token=code) for code in codes)
    return codes


@transaction.atomic
def second_factor_remove(*, user: AbstractBaseUser) -> None:
    """Turn the second factor off (not for administrators, who must keep it)."""
    if second_factor_required(user):
        raise ValueError("Administrators must keep their second factor.")
    for device in devices_for_user(user, confirmed=None):
        device.delete()


def second_factor_check(*, user: AbstractBaseUser, code: str) -> Device | None:
    """The device that accepts ``code``: the app's current code or an unused recovery code.

    Each device counts its own failures and makes the user wait longer after each one
    (django-otp's throttling), so codes cannot be guessed at speed.
    """
    code = "".join(code.split())
    for device in devices_for_user(user, confirmed=True):
        verified = verify_token(user, device.persistent_id, code)
        if verified is not None:
            return verified
    return None


def audit(event: str, *, request: HttpRequest | None, username: str | None, **fields) -> None:
    """One line in the JSON log per login event, with the user and the real client address
    (the address the lockout counts: X-Forwarded-For only with BEHIND_PROXY=1)."""
    from axes.helpers import get_client_ip_address

    address = get_client_ip_address(request) if request is not None else None
    level = (
        logging.INFO if event in {"login", "logout", "second factor passed"} else logging.WARNING
    )
    user, client_ip = username or "", address or ""
    log.log(
        level,
        "%s: %s from %s",
        event,
        user or "(no username)",
        client_ip or "(unknown address)",
        extra={"event": event, "user": user, "client_ip": client_ip, **fields},
    )
