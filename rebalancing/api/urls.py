from django.urls import path

from . import views

urlpatterns = [
    path("rebalancing/preferences/", views.GlobalPreferencesView.as_view(), name="preferences-global"),
    path(
        "portfolios/accounts/<str:account_id>/preferences/",
        views.AccountPreferencesView.as_view(),
        name="account-preferences",
    ),
    path("portfolios/rebalancings/previews/", views.PreviewView.as_view(), name="rebalance-previews"),
    path(
        "portfolios/allocations/<str:allocation_id>/constituents/",
        views.ConstituentsView.as_view(),
        name="allocation-constituents",
    ),
]
