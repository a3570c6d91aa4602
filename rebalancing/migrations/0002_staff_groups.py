from django.db import migrations

from portfolios.staff_groups import install_staff_groups


class Migration(migrations.Migration):
    dependencies = [
        ("rebalancing", "0001_preferences"),
        ("portfolios", "0002_staff_groups"),
    ]

    operations = [migrations.RunPython(install_staff_groups, migrations.RunPython.noop)]
