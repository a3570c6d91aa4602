from django.db import migrations

from portfolios.staff_groups import install_staff_groups


class Migration(migrations.Migration):
    dependencies = [
        ("portfolios", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(install_staff_groups, migrations.RunPython.noop)]
