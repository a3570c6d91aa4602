from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import ImportBreak, ImportJob
from ..selectors import import_progress_of

BREAKS_SHOWN = 1000


class ImportErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField(allow_null=True, help_text="1 = the first data row; 0 = the header.")
    field = serializers.CharField(allow_blank=True)
    message = serializers.CharField()


class BreakSerializer(serializers.Serializer):
    break_id = serializers.UUIDField(source="id")
    account_id = serializers.UUIDField()
    instrument_id = serializers.UUIDField(required=False, help_text="A position's break.")
    isin = serializers.CharField(required=False, allow_null=True)
    currency = serializers.CharField(required=False, help_text="A cash account's break.")
    kind = serializers.CharField(required=False, source="cash_kind")
    book = serializers.DecimalField(max_digits=28, decimal_places=10, allow_null=True)
    file = serializers.DecimalField(max_digits=28, decimal_places=10, allow_null=True,
                                    help_text="null: not in the file (accepting makes it 0).")
    difference = serializers.DecimalField(max_digits=28, decimal_places=10)
    accepted = serializers.BooleanField()

    def to_representation(self, instance: ImportBreak):
        data = super().to_representation(instance)
        if instance.instrument_id is None:
            for key in ("instrument_id", "isin"):
                data.pop(key, None)
        else:
            data["isin"] = instance.instrument.isin
            for key in ("currency", "kind"):
                data.pop(key, None)
        return data


class ImportSerializer(serializers.ModelSerializer):
    import_id = serializers.UUIDField(source="id")
    errors = ImportErrorSerializer(many=True)
    breaks = serializers.SerializerMethodField(help_text=f"The first {BREAKS_SHOWN}; all in .../breaks/ as CSV.")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    progress = serializers.SerializerMethodField(help_text="Percent done.")

    class Meta:
        model = ImportJob
        fields = [
            "import_id", "kind", "mode", "match", "tolerance", "status", "progress", "file_name", "sha256", "size",
            "rows", "rows_changed", "accounts_changed", "error_count", "errors", "break_count", "breaks",
            "created_by", "created_at", "started_at", "finished_at", "accepted_at",
        ]

    def get_progress(self, job) -> int:
        return import_progress_of(job)

    @extend_schema_field(BreakSerializer(many=True))
    def get_breaks(self, job) -> list[dict]:
        breaks = job.breaks.select_related("instrument").order_by("account_id", "instrument__isin", "currency")
        return BreakSerializer(breaks[:BREAKS_SHOWN], many=True).data


class AcceptSerializer(serializers.Serializer):
    break_ids = serializers.ListField(child=serializers.CharField(), required=False,
                                      help_text="The breaks to apply; all when absent.")


class HoldingsQuerySerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["APPLY", "RECONCILE"], default="APPLY")
    match = serializers.ChoiceField(choices=["account_id", "client_id"], default="account_id")
    tolerance = serializers.DecimalField(max_digits=28, decimal_places=10, min_value=0, default=0)


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The CSV file.")
