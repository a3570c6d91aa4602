"""The staff groups and what each may do, declared once; migrations install them."""

VIEW = ("view",)
ALL = ("add", "change", "delete", "view")
CUSTOM = "_custom"  # key for permissions named by their full codename

GROUPS = {
    "Portfolio managers": {
        "portfolios": {
            "instrument": ALL, "price": ALL, "fxrate": ALL,
            "allocation": ALL, "allocationversion": VIEW, "allocationline": ALL,
            "portfolioaccount": VIEW, "position": VIEW, "cashaccount": VIEW, "configuration": VIEW,
        },
        "rebalancing": {
            "rebalancepreferences": VIEW, "execution": VIEW, "executionresult": VIEW, "executionchunk": VIEW,
            "tradeorder": VIEW, "portfolioorder": VIEW,
        },
    },
    "Operations": {
        "portfolios": {
            "portfolioaccount": ALL, "position": ALL, "cashaccount": ALL, "configuration": ALL,
            "instrument": VIEW, "price": VIEW, "fxrate": VIEW,
            "allocation": VIEW, "allocationversion": VIEW, "allocationline": VIEW,
        },
        "rebalancing": {
            "rebalancepreferences": ALL, "execution": ("add", "change", "view"), "executionresult": VIEW,
            "executionchunk": VIEW, "tradeorder": ("change", "view"), "portfolioorder": ("add", "view"),
            CUSTOM: ("execute_rebalance",),
        },
    },
    # Four eyes (docs/executions.md, "Approval"): approvers see executions, their results
    # and orders, and decide the ones waiting; they do not start executions themselves.
    "Approvers": {
        "portfolios": {
            "portfolioaccount": VIEW, "position": VIEW, "cashaccount": VIEW, "configuration": VIEW,
            "allocation": VIEW, "allocationversion": VIEW, "allocationline": VIEW, "instrument": VIEW,
        },
        "rebalancing": {
            "rebalancepreferences": VIEW, "execution": VIEW, "executionresult": VIEW, "executionchunk": VIEW,
            "tradeorder": VIEW, CUSTOM: ("approve_execution",),
        },
    },
    "Read-only": {
        "portfolios": {
            model: VIEW
            for model in (
                "instrument", "price", "fxrate", "allocation", "allocationversion", "allocationline",
                "portfolioaccount", "position", "cashaccount", "configuration",
            )
        },
        "rebalancing": {
            model: VIEW
            for model in (
                "rebalancepreferences", "execution", "executionresult", "executionchunk", "tradeorder", "portfolioorder",
            )
        },
    },
}


def install_staff_groups(apps, schema_editor=None) -> None:
    """Create or complete the groups (idempotent; later migrations call it again)."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, grants in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        for app_label, models in grants.items():
            for model, actions in models.items():
                codenames = list(actions) if model == CUSTOM else [f"{action}_{model}" for action in actions]
                group.permissions.add(
                    *Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
                )
