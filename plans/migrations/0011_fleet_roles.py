"""Give the Dispatchers and Viewers groups their permissions on vehicles and schedules."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from plans.roles import roles_ensure


def forwards(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    roles_ensure(apps)


class Migration(migrations.Migration):
    dependencies = [("plans", "0010_fleet")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
