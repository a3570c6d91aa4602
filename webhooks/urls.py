from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()
router.register("webhooks/subscriptions", api.SubscriptionViewSet, basename="webhook-subscription")
router.register("webhooks/deliveries", api.DeliveryViewSet, basename="webhook-delivery")

urlpatterns = router.urls
