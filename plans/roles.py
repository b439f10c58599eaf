"""The two portal roles as Django groups: what each may do, in one place.

The data migration creates them; ``roles_ensure`` repairs them (tests that flush the database,
a group edited by hand in admin).
"""

from django.apps import apps as global_apps

DISPATCHERS = "Dispatchers"
VIEWERS = "Viewers"

READ_PERMISSIONS = [
    "view_location",
    "view_plan",
    "view_planevent",
    "view_submission",
    "view_deliveryattempt",
    "view_vehicle",
    "view_schedule",
    "view_scheduleevent",
    "view_scheduleexception",
]
ROLE_PERMISSIONS = {
    DISPATCHERS: [
        *READ_PERMISSIONS,
        "add_plan",
        "change_plan",
        "submit_plan",
        "add_schedule",
        "change_schedule",
    ],
    VIEWERS: READ_PERMISSIONS,
}


def roles_ensure(apps=global_apps) -> None:
    """Create or repair both groups; ``apps`` is a migration's app registry when run from one."""
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, codenames in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.set(
            permission_model.objects.filter(content_type__app_label="plans", codename__in=codenames)
        )
