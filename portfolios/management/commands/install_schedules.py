from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from config.schedules import SCHEDULES


class Command(BaseCommand):
    help = "Install the periodic tasks declared in config/schedules.py into the beat database scheduler."

    @transaction.atomic
    def handle(self, *args, **options):
        for name, spec in SCHEDULES.items():
            crontab, _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **spec["crontab"])
            task, created = PeriodicTask.objects.get_or_create(
                name=name, defaults={"task": spec["task"], "crontab": crontab}
            )
            if not created and task.task != spec["task"]:
                # The task path is code; the time and the enabled flag belong to operators.
                task.task = spec["task"]
                task.save(update_fields=["task"])
            self.stdout.write(f"{'installed' if created else 'kept'}: {name} ({task.task})")
        PeriodicTasks.update_changed()
