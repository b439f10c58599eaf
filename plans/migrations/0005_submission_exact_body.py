"""Keep each message as the exact JSON text sent, not a JSON value.

PostgreSQL's jsonb reorders keys; MINT and the dispatcher should see the body in the spec's field
order, byte for byte the same on every retry.
"""

import json

from django.db import migrations, models


def payload_to_body(apps, schema_editor):
    Submission = apps.get_model("plans", "Submission")
    for submission in Submission.objects.only("pk", "payload").iterator():
        Submission.objects.filter(pk=submission.pk).update(
            body=json.dumps(submission.payload, separators=(",", ":"), ensure_ascii=False)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("plans", "0004_plan_state_counts"),
    ]

    operations = [
        migrations.AddField(
            model_name="submission",
            name="body",
            field=models.TextField(
                default="",
                help_text="The exact JSON body for MINT, frozen when submitted: every retry "
                "sends it byte for byte, in the spec's field order.",
            ),
            preserve_default=False,
        ),
        migrations.RunPython(payload_to_body, migrations.RunPython.noop),
        migrations.RemoveField(model_name="submission", name="payload"),
    ]
