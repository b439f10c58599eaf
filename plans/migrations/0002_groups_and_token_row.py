"""Create the Dispatchers and Viewers groups with their permissions, and the shared token row."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

DISPATCHER_PERMS = [
    "view_location",
    "view_plan",
    "add_plan",
    "change_plan",
    "submit_plan",
    "view_planevent",
    "view_submission",
    "view_deliveryattempt",
]
VIEWER_PERMS = [
    "view_location",
    "view_plan",
    "view_planevent",
    "view_submission",
    "view_deliveryattempt",
]


def forwards(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in (("Dispatchers", DISPATCHER_PERMS), ("Viewers", VIEWER_PERMS)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="plans", codename__in=codenames)
        )
    apps.get_model("plans", "MintToken").objects.get_or_create(pk=1)


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Dispatchers", "Viewers"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("plans", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
