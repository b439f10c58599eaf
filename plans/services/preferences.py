"""What the portal remembers for a user: the site of their last new plan."""

from django.contrib.auth.models import AbstractBaseUser

from plans.models import Location, UserPreference


def preference_site_remember(*, user: AbstractBaseUser, location: Location) -> None:
    """Remember ``location`` as the site preselected on ``user``'s next new plan.

    One upsert per saved plan; a user's choice never touches another user's row.
    """
    UserPreference.objects.update_or_create(user=user, defaults={"last_location": location})
