"""Restriction lists and substitutes over the API (spec §11, api.md "Additions").

    GET, POST           /api/v1/restriction-lists/
    GET, PUT, DELETE    /api/v1/restriction-lists/{list_id}/      PUT replaces the entries; DELETE of an assigned list → 409
    GET                 /api/v1/substitutes/
    GET, PUT            /api/v1/substitutes/{instrument_id}/      PUT {"substitutes": [ISIN or UUID, ...]}
"""

from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from config.api.exceptions import problems
from config.api.schema import states

from .. import services
from ..models import Instrument, RestrictionEntry, RestrictionList, RestrictionRule, RestrictionScope, Substitute
from ..selectors import instruments_by_reference
from ..services.restrictions import MAX_ENTRIES
from .fields import IsoDateField
from .serializers import StrictFieldsMixin
from .views import INSTRUMENT_ID_PARAMETER, ApiViewSet


class EntryInputSerializer(StrictFieldsMixin, serializers.Serializer):
    instrument_id = serializers.CharField(help_text="ISIN or UUID.")
    rule = serializers.ChoiceField(RestrictionRule.choices)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    effective_from = IsoDateField(required=False, allow_null=True, default=None, help_text="Empty: from always.")
    effective_to = IsoDateField(required=False, allow_null=True, default=None, help_text="Inclusive; empty: open.")


class RestrictionListInputSerializer(StrictFieldsMixin, serializers.Serializer):
    name = serializers.CharField(max_length=200)
    scope = serializers.ChoiceField(RestrictionScope.choices, required=False, default=RestrictionScope.ACCOUNT)
    entries = states(EntryInputSerializer(many=True, required=False, default=list), maxItems=MAX_ENTRIES)


class EntrySerializer(serializers.Serializer):
    instrument_id = serializers.UUIDField()
    isin = serializers.CharField(source="instrument.isin", allow_null=True)
    rule = serializers.ChoiceField(RestrictionRule.choices)
    reason = serializers.CharField()
    effective_from = serializers.DateField(allow_null=True)
    effective_to = serializers.DateField(allow_null=True)


class RestrictionListSerializer(serializers.Serializer):
    list_id = serializers.UUIDField(source="id")
    name = serializers.CharField()
    scope = serializers.ChoiceField(RestrictionScope.choices)
    entries = EntrySerializer(source="entries.all", many=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SubstitutesInputSerializer(StrictFieldsMixin, serializers.Serializer):
    substitutes = states(serializers.ListField(
        child=serializers.CharField(), help_text="ISINs or UUIDs in order of preference; [] removes them."
    ), uniqueItems=True)


class SubstitutesSerializer(serializers.Serializer):
    instrument_id = serializers.UUIDField(source="id")
    substitutes = serializers.SerializerMethodField()

    def get_substitutes(self, instrument) -> list[str]:
        return [str(row.substitute_id) for row in instrument.substitute_rows.all()]


def _entries(validated: list) -> list:
    return [services.EntryInput(**entry) for entry in validated]


LIST_ID_PARAMETER = OpenApiParameter("list_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


@extend_schema_view(
    list=extend_schema(summary="List restriction lists", responses={200: RestrictionListSerializer(many=True), **problems(400)}),
    create=extend_schema(summary="Create a restriction list with its entries", request=RestrictionListInputSerializer,
                         responses={201: RestrictionListSerializer, **problems(400)}),
    retrieve=extend_schema(summary="Get a restriction list", parameters=[LIST_ID_PARAMETER],
                           responses={200: RestrictionListSerializer, **problems(404)}),
    update=extend_schema(summary="Replace a restriction list (name, scope and all entries)", parameters=[LIST_ID_PARAMETER],
                         request=RestrictionListInputSerializer,
                         responses={200: RestrictionListSerializer, **problems(400, 404)}),
    destroy=extend_schema(summary="Delete a restriction list (409 while assigned to an account)",
                          parameters=[LIST_ID_PARAMETER], responses={204: None, **problems(404, 409)}),
)
class RestrictionListViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = RestrictionListSerializer
    lookup_url_kwarg = "list_id"
    noun = "restriction list"
    filter_backends = []

    def get_queryset(self):
        entries = RestrictionEntry.objects.select_related("instrument").order_by("id")
        return RestrictionList.objects.prefetch_related(Prefetch("entries", queryset=entries)).order_by("name", "id")

    def _respond(self, restriction_list, status_code=status.HTTP_200_OK):
        restriction_list = self.get_queryset().get(pk=restriction_list.pk)
        return Response(RestrictionListSerializer(restriction_list).data, status=status_code)

    def create(self, request):
        data = RestrictionListInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        restriction_list = services.restriction_list_create(
            name=values["name"], scope=values["scope"], entries=_entries(values["entries"]), user=request.user
        )
        return self._respond(restriction_list, status.HTTP_201_CREATED)

    def update(self, request, list_id=None):
        restriction_list = self.get_object()
        data = RestrictionListInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        restriction_list = services.restriction_list_update(
            restriction_list=restriction_list, name=values["name"], scope=values["scope"],
            entries=_entries(values["entries"]), user=request.user,
        )
        return self._respond(restriction_list)

    def destroy(self, request, list_id=None):
        services.restriction_list_delete(restriction_list=self.get_object(), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(summary="List the instruments that have substitutes",
                       responses={200: SubstitutesSerializer(many=True), **problems(400)}),
    retrieve=extend_schema(summary="Get an instrument's substitutes", parameters=[INSTRUMENT_ID_PARAMETER],
                           responses={200: SubstitutesSerializer, **problems(404)}),
    update=extend_schema(summary="Replace an instrument's substitutes (in order of preference)",
                         parameters=[INSTRUMENT_ID_PARAMETER], request=SubstitutesInputSerializer,
                         responses={200: SubstitutesSerializer, **problems(400, 404)}),
)
class SubstituteViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Permissions are those of the Substitute model."""

    serializer_class = SubstitutesSerializer
    lookup_url_kwarg = "instrument_id"
    noun = "instrument"
    filter_backends = []
    required_permissions = {
        "GET": ["portfolios.view_substitute"],
        "PUT": ["portfolios.add_substitute", "portfolios.change_substitute", "portfolios.delete_substitute"],
    }

    def get_queryset(self):
        if self.action != "list":
            return Substitute.objects.none()
        rows = Substitute.objects.order_by("rank")
        return (
            Instrument.objects.filter(substitute_rows__isnull=False).distinct()
            .prefetch_related(Prefetch("substitute_rows", queryset=rows)).order_by("name", "id")
        )

    def get_object(self):
        reference = self.kwargs[self.lookup_url_kwarg]
        instrument = instruments_by_reference([reference]).get(reference)
        if instrument is None:
            raise NotFound(f"no instrument with ISIN or UUID {reference}")
        return instrument

    def _respond(self, instrument):
        instrument = Instrument.objects.prefetch_related(
            Prefetch("substitute_rows", queryset=Substitute.objects.order_by("rank"))
        ).get(pk=instrument.pk)
        return Response(SubstitutesSerializer(instrument).data)

    def retrieve(self, request, instrument_id=None):
        return self._respond(self.get_object())

    def update(self, request, instrument_id=None):
        instrument = self.get_object()
        data = SubstitutesInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.substitutes_replace(instrument=instrument, substitutes=data.validated_data["substitutes"], user=request.user)
        return self._respond(instrument)
