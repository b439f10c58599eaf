"""The MINT access token is stored encrypted: the clear-text column is renamed and emptied.

Emptying it is the whole data migration: the token is a cache of MINT's answer, so the next
delivery fetches a new one and stores it encrypted. (Backups made before this still hold the old
token in clear text until it expires.)
"""

from django.db import migrations, models


def forget_clear_text_token(apps, schema_editor):
    apps.get_model("plans", "MintToken").objects.update(
        encrypted_token="", expires_at=None, fetched_at=None
    )


class Migration(migrations.Migration):
    dependencies = [
        ("plans", "0012_submission_withdrawn"),
    ]

    operations = [
        migrations.RenameField(
            model_name="minttoken", old_name="access_token", new_name="encrypted_token"
        ),
        migrations.AlterField(
            model_name="minttoken",
            name="encrypted_token",
            field=models.TextField(
                blank=True,
                help_text="The access token, encrypted with MINT_TOKEN_KEYS (plans.token_cipher).",
            ),
        ),
        migrations.RunPython(forget_clear_text_token, migrations.RunPython.noop),
    ]
