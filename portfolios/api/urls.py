from django.urls import path
from rest_framework.routers import SimpleRouter

from . import restrictions, views

router = SimpleRouter()
router.register("instruments", views.InstrumentViewSet, basename="instrument")
router.register("prices", views.PriceViewSet, basename="price")
router.register("fx-rates", views.FxRateViewSet, basename="fxrate")
router.register("portfolios/allocations", views.AllocationViewSet, basename="allocation")
router.register("portfolios/accounts", views.AccountViewSet, basename="account")
router.register("portfolios/configurations", views.ConfigurationViewSet, basename="configuration")
router.register("restriction-lists", restrictions.RestrictionListViewSet, basename="restrictionlist")
router.register("substitutes", restrictions.SubstituteViewSet, basename="substitute")

urlpatterns = [
    path(
        "portfolios/allocations/<str:allocation_id>/versions/",
        views.AllocationVersionListView.as_view(),
        name="allocation-versions",
    ),
    path(
        "portfolios/accounts/<str:account_id>/holdings/",
        views.AccountHoldingsView.as_view(),
        name="account-holdings",
    ),
    path("portfolios/accounts/<str:account_id>/lots/", views.AccountLotsView.as_view(), name="account-lots"),
    path(
        "portfolios/accounts/<str:account_id>/realized-gains/",
        views.AccountRealizedGainsView.as_view(),
        name="account-realized-gains",
    ),
    *router.urls,
]
