"""The staff UI (Django admin). Every write goes through portfolios.services: see
portfolios/forms.py for how the forms hand their rows to the services."""

from . import accounts, allocations, instruments, restrictions  # noqa: F401  (each module registers its admins)
