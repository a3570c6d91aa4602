from django.db import migrations

from portfolios.staff_groups import install_staff_groups


class Migration(migrations.Migration):
    dependencies = [("rebalancing", "0003_executions_orders")]

    operations = [migrations.RunPython(install_staff_groups, migrations.RunPython.noop)]
