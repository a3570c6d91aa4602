"""Signal receivers: who and how on every entry auditlog writes, entries never
changed once written, and the context of a Celery task."""

from auditlog.models import LogEntry
from celery.signals import task_postrun, task_prerun
from django.core.exceptions import PermissionDenied
from django.db.models.signals import pre_save
from django.dispatch import receiver

from .context import VIA_TASK, AuditContext, pop, push
from .services import apply_context


@receiver(pre_save, sender=LogEntry, dispatch_uid="audit-fill-context")
def _fill_context(sender, instance, **kwargs) -> None:
    if not instance._state.adding:
        raise PermissionDenied("audit entries are never changed once written")
    apply_context(instance)


_task_tokens: dict = {}


@task_prerun.connect(dispatch_uid="audit-task-context")
def _task_started(task_id=None, task=None, **kwargs) -> None:
    _task_tokens[task_id] = push(AuditContext(via=VIA_TASK, system=f"task {task.name}"))


@task_postrun.connect(dispatch_uid="audit-task-context-end")
def _task_finished(task_id=None, **kwargs) -> None:
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        try:
            pop(token)
        except ValueError:  # set in another context (a task run eagerly elsewhere): nothing to restore here
            pass
