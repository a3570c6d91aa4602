"""Django model permissions for every API view; no anonymous access anywhere."""

from rest_framework.permissions import DjangoModelPermissions

VIEW = ["%(app_label)s.view_%(model_name)s"]


class ModelPermissions(DjangoModelPermissions):
    """Authenticated, and holding the model permission the method needs.

    GET/HEAD/OPTIONS need `view_<model>`, POST `add_`, PUT/PATCH `change_`, DELETE
    `delete_`, on the model of the view's queryset. A view whose writes touch other
    models declares `required_permissions = {"PUT": ["portfolios.change_position", ...]}`;
    methods it does not list fall back to the model rule.
    """

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": VIEW,
        "HEAD": VIEW,
        "OPTIONS": VIEW,
    }

    def has_permission(self, request, view):
        user = request.user
        if not user or not user.is_authenticated:
            return False
        explicit = getattr(view, "required_permissions", {}).get(request.method)
        if explicit is not None:
            return user.has_perms(explicit)
        return super().has_permission(request, view)
