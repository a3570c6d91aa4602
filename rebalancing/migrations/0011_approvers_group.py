from django.db import migrations

from portfolios.staff_groups import install_staff_groups


class Migration(migrations.Migration):
    """The "Approvers" staff group, holding rebalancing.approve_execution (0008)."""

    dependencies = [("rebalancing", "0010_execution_write_path")]

    operations = [migrations.RunPython(install_staff_groups, migrations.RunPython.noop)]
