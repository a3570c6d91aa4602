"""/api/v1/webhooks/: subscriptions and their deliveries. Thin adapters over `services`."""

import uuid
import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from config.api.exceptions import problems
from config.api.idempotency import IdempotentMixin
from config.api.strict import UnknownFieldsRefused

from . import services
from .models import ALL_EVENTS, EVENT_TYPES, Delivery, DeliveryStatus, Subscription, validate_webhook_url

class EventTypesField(serializers.ListField):
    child = serializers.ChoiceField(choices=[ALL_EVENTS, *EVENT_TYPES])

    def __init__(self, **kwargs):
        super().__init__(allow_empty=False, min_length=1, help_text='Event types to receive; ["*"] for all.', **kwargs)

    def to_internal_value(self, data):
        return list(dict.fromkeys(super().to_internal_value(data)))  # without repeats, in order


class SubscriptionSerializer(UnknownFieldsRefused, serializers.Serializer):
    subscription_id = serializers.UUIDField(source="id", read_only=True)
    url = serializers.URLField(max_length=2000, validators=[validate_webhook_url])
    event_types = EventTypesField()
    active = serializers.BooleanField(default=True)


class SubscriptionCreatedSerializer(SubscriptionSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="The signing secret. Returned only in this answer: store it now."
    )


class DeliverySerializer(serializers.Serializer):
    delivery_id = serializers.IntegerField(source="id", help_text="Increases with event creation.")
    subscription_id = serializers.UUIDField()
    event_id = serializers.UUIDField()
    event_type = serializers.CharField(source="event.type")
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()
    next_attempt_at = serializers.DateTimeField(help_text="For a PENDING delivery: not sent before.")
    first_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)


class DeliveryFilter(django_filters.FilterSet):
    subscription_id = django_filters.UUIDFilter(field_name="subscription_id")
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)

    class Meta:
        model = Delivery
        fields = ["subscription_id", "status"]


SUBSCRIPTION_ID = OpenApiParameter("subscription_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


@extend_schema_view(
    list=extend_schema(summary="List webhook subscriptions",
                       responses={200: SubscriptionSerializer(many=True), **problems(400)}),
    create=extend_schema(
        summary="Subscribe an endpoint to events",
        description="The answer carries the signing `secret`, the only time it is shown (docs/webhooks.md).",
        request=SubscriptionSerializer, responses={201: SubscriptionCreatedSerializer, **problems(400)},
    ),
    retrieve=extend_schema(summary="Get a webhook subscription", parameters=[SUBSCRIPTION_ID],
                           responses={200: SubscriptionSerializer, **problems(404)}),
    partial_update=extend_schema(summary="Change a webhook subscription's URL, event types or active flag",
                                 parameters=[SUBSCRIPTION_ID], request=SubscriptionSerializer,
                                 responses={200: SubscriptionSerializer, **problems(400, 404)}),
    destroy=extend_schema(summary="Delete a webhook subscription with its deliveries", parameters=[SUBSCRIPTION_ID],
                          responses={204: None, **problems(404)}),
)
class SubscriptionViewSet(IdempotentMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Subscription.objects.order_by("-created_at", "id")
    serializer_class = SubscriptionSerializer
    filter_backends = []
    lookup_url_kwarg = "subscription_id"

    def get_object(self):
        raw = self.kwargs[self.lookup_url_kwarg]
        try:
            subscription = self.get_queryset().filter(pk=uuid.UUID(raw)).first()
        except ValueError:
            subscription = None
        if subscription is None:
            raise NotFound(f"no subscription with id {raw}")
        self.check_object_permissions(self.request, subscription)
        return subscription

    def create(self, request):
        data = SubscriptionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        subscription = services.subscription_create(**data.validated_data)
        return Response(SubscriptionCreatedSerializer(subscription).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, subscription_id=None):
        subscription = self.get_object()
        data = SubscriptionSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        subscription = services.subscription_update(subscription=subscription, **data.validated_data)
        return Response(SubscriptionSerializer(subscription).data)

    def destroy(self, request, subscription_id=None):
        services.subscription_delete(subscription=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="List webhook deliveries, newest first",
        description="One row per event and subscription; `last_status_code` and `last_error` are those of the "
        "latest attempt (the admin shows every attempt).",
        responses={200: DeliverySerializer(many=True), **problems(400)},
    ),
)
class DeliveryViewSet(IdempotentMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = Delivery.objects.select_related("event").order_by("-id")
    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilter
