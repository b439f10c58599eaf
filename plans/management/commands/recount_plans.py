"""``python manage.py recount_plans``: recount plans per state for the dashboard.

The services keep the counts with every history row; run this after loading plans beside them
(a restore, a bulk import) or if the dashboard's numbers ever disagree with the plan list.
"""

from django.core.management.base import BaseCommand

from plans import selectors, services


class Command(BaseCommand):
    help = "Recount plans per state (the dashboard's numbers) from the plans themselves."

    def handle(self, *args, **options) -> None:
        services.plan_state_counts_rebuild()
        counts = selectors.state_counts()
        self.stdout.write(", ".join(f"{state} {count}" for state, count in counts.items()))
