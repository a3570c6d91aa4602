"""Django model permissions for every API view; no anonymous access anywhere."""

from rest_framework.permissions import DjangoModelPermissions

VIEW = ["%(app_label)s.view_%(model_name)s"]


class ModelPermissions(DjangoModelPermissions):
    """Authenticated, and holding the model permission the method needs.

    GET/HEAD/OPTIONS need `view_<model>`, POST `add_`, PUT/PATCH `change_`, DELETE
    `delete_`, on the model of the view's queryset. A view whose writes touch other
    models declares `required_permissions = {"PUT": ["portfolios.change_position", ...]}`;
    methods it does not list fall back to the model rule, except HEAD, which needs what
    GET needs.
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
        required = getattr(view, "required_permissions", {})
        explicit = required.get(request.method)
        if explicit is None and request.method == "HEAD":
            explicit = required.get("GET")  # a GET without its body: never less than GET needs
        if explicit is not None:
            return user.has_perms(explicit)
        return super().has_permission(request, view)
