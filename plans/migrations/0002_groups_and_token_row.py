"""Create the Dispatchers and Viewers groups with their permissions, and the shared token row."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from plans.roles import roles_ensure


def forwards(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    roles_ensure(apps)
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
