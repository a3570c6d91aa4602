from django.contrib import admin
from django.urls import include, path

from config.health import healthz, readyz
from config.metrics import metrics_view

urlpatterns = [
    # Unauthenticated, for load balancers and orchestrators (config/health.py).
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    # Prometheus, with `Authorization: Bearer <METRICS_TOKEN>` (config/metrics.py).
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api.urls")),
]
