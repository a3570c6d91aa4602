from django.contrib.admin.apps import AdminConfig


class BallastAdminConfig(AdminConfig):
    """Django's admin with Ballast's site: the dashboard as index, business first."""

    default_site = "config.admin_site.BallastAdminSite"
