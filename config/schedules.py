"""Every periodic task, declared once. `manage.py install_schedules` writes them into
django-celery-beat's database scheduler, where operators can see, re-time and pause
them in the admin. Times are UTC."""

SCHEDULES = {
    "Purge expired idempotency keys": {
        "task": "portfolios.tasks.idempotency_records_purge_task",
        "crontab": {"minute": "15", "hour": "3"},
    },
    # Daily, after the night's prices: model lines untradable or without a price (docs/restrictions.md).
    "Check allocations needing attention": {
        "task": "portfolios.tasks.allocation_alerts_refresh_task",
        "crontab": {"minute": "45", "hour": "4"},
    },
    "Purge expired API tokens": {
        "task": "credentials.tasks.api_tokens_purge_task",
        "crontab": {"minute": "20", "hour": "3"},
    },
    # Daily, after the previous day's closing prices are in. Each due date runs at most
    # once whatever beat does (claims under a unique key): see docs/automation.md.
    "Evaluate rebalancing strategies": {
        "task": "rebalancing.tasks.strategies_evaluate_task",
        "crontab": {"minute": "0", "hour": "5"},
    },
    "Run savings plans": {
        "task": "rebalancing.tasks.savings_plans_run_task",
        "crontab": {"minute": "30", "hour": "5"},
    },
    # Safety net of the executions: messages lost by the broker (docs/executions.md).
    "Recover stalled executions": {
        "task": "rebalancing.tasks.executions_recover_task",
        "crontab": {"minute": "*/5"},
    },
    # Safety net of the webhook outbox: due retries and sends whose task was lost (docs/webhooks.md).
    "Send due webhook deliveries": {
        "task": "webhooks.tasks.deliveries_dispatch_task",
        "crontab": {"minute": "*"},
    },
}
