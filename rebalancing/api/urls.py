from django.urls import path
from rest_framework.routers import SimpleRouter

from . import automation, executions, orders, views

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
    path("portfolios/rebalancings/executions/", executions.execution_list, name="execution-list"),
    path("portfolios/rebalancings/executions/<str:execution_id>/", executions.execution_detail, name="execution-detail"),
    path(
        "portfolios/rebalancings/executions/<str:execution_id>/cancel/",
        executions.execution_cancel,
        name="execution-cancel",
    ),
    path(
        "portfolios/rebalancings/executions/<str:execution_id>/approve/",
        executions.execution_approve_view,
        name="execution-approve",
    ),
    path(
        "portfolios/rebalancings/executions/<str:execution_id>/reject/",
        executions.execution_reject_view,
        name="execution-reject",
    ),
]

orders_router = SimpleRouter()
orders_router.register("portfolios/orders", orders.PortfolioOrderViewSet, basename="portfolio-order")
orders_router.register("trade-orders", orders.TradeOrderViewSet, basename="trade-order")
urlpatterns += orders_router.urls

automation_router = SimpleRouter()
automation_router.register("portfolios/savings-plans", automation.SavingsPlanViewSet, basename="savings-plan")
urlpatterns += automation_router.urls
