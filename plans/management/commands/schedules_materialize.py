"""``python manage.py schedules_materialize``: make the plans of every schedule's days inside
the horizon now, instead of waiting for a worker's next turn. Safe to run at any time, beside
running workers: a schedule day never gets a second plan."""

from django.conf import settings
from django.core.management.base import BaseCommand

from plans import services


class Command(BaseCommand):
    help = "Turn repeating schedules into plans for the next SCHEDULE_HORIZON_DAYS days."

    def handle(self, *args, **options) -> None:
        result = services.schedules_materialize()
        self.stdout.write(
            f"Made {len(result.created)} plan(s) for the next {settings.SCHEDULE_HORIZON_DAYS} "
            f"days; {result.submitted} submitted automatically."
        )
        if result.conflicts:
            self.stdout.write(
                f"{result.conflicts} day(s) got no plan because of a conflict; each schedule's "
                f"history says why."
            )
