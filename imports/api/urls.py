from django.urls import path

from . import views

urlpatterns = [
    path("imports/holdings/", views.HoldingsUploadView.as_view(), name="import-holdings"),
    path("imports/prices/", views.PricesUploadView.as_view(), name="import-prices"),
    path("imports/fx-rates/", views.FxRatesUploadView.as_view(), name="import-fx-rates"),
    path("imports/<str:import_id>/", views.ImportDetailView.as_view(), name="import-detail"),
    path("imports/<str:import_id>/accept/", views.ImportAcceptView.as_view(), name="import-accept"),
    path("imports/<str:import_id>/breaks/", views.ImportBreaksCsvView.as_view(), name="import-breaks"),
]
