"""Thin adapters: receive a file, create an import (the work runs in Celery), show it,
accept its breaks, and give its break report as CSV."""

import csv
import re

from django.core.files.uploadedfile import TemporaryUploadedFile
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import BaseParser, DataAndFiles, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.exceptions import problems
from config.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from config.api.idempotency import IDEMPOTENCY_PARAMETER, MAX_KEY_LENGTH, IdempotentMixin, idempotency_key
from core.ids import parse_uuid

from .. import services
from ..models import ImportJob, ImportKind
from ..selectors import break_report_rows
from . import serializers as s

FILENAME = re.compile(r'filename="?([^";]+)"?')


class CsvBodyParser(BaseParser):
    """A CSV file sent as the request body: streamed to a temporary file, never held
    in memory."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        match = FILENAME.search(request.headers.get("Content-Disposition", ""))
        upload = TemporaryUploadedFile(match.group(1) if match else "upload.csv", "text/csv", 0, "utf-8")
        if stream is not None:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                upload.write(chunk)
        upload.seek(0)
        return DataAndFiles({}, {"file": upload})


class ImportsView(APIView):
    queryset = ImportJob.objects.all()

    def get_job(self, import_id) -> ImportJob:
        pk = parse_uuid(import_id)
        job = ImportJob.objects.filter(pk=pk).select_related("created_by").first() if pk else None
        if job is None:
            raise NotFound(f"no import with id {import_id}")
        return job


UPLOAD_BODY = {"text/csv": OpenApiTypes.BINARY, "multipart/form-data": s.UploadSerializer}
IDEMPOTENCY = OpenApiParameter(
    IDEMPOTENCY_HEADER, IDEMPOTENCY_PARAMETER.type, OpenApiParameter.HEADER, required=False,
    description=(f"At most {MAX_KEY_LENGTH} characters, not blank. The same key with the same file returns the first "
                 "import again (202); with another file, 409."),
)


class UploadView(ImportsView):
    parser_classes = [CsvBodyParser, MultiPartParser]
    kind = ImportKind.HOLDINGS

    def post(self, request):
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": ["send the CSV file as the body (Content-Type: text/csv) or as multipart field `file`"]})
        options = self.options_of(request)
        job, _ = services.import_create(
            kind=self.kind, upload=upload, file_name=upload.name, user=request.user,
            idempotency_key=idempotency_key(request), **options,
        )
        return Response(s.ImportSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    def options_of(self, request) -> dict:
        return {}


# What every upload answers: the import to poll, or a problem.
UPLOAD_RESPONSES = {202: s.ImportSerializer, **problems(400, 409, 415)}


class HoldingsUploadView(UploadView):
    required_permissions = {"POST": ["imports.add_importjob", "portfolios.change_position", "portfolios.change_cashaccount"]}

    @extend_schema(
        summary="Import a holdings file",
        description=(
            "A full snapshot of every account the file names (docs/imports.md): columns `account_id, instrument_id, "
            "units, currency, balance` and optional `kind`, `acquired_on`, `unit_cost` (a row with `acquired_on` is one "
            "tax lot of the position; its lot rows add up to its units). "
            "The file is checked whole in a worker; poll the import. APPLY writes it; RECONCILE lists the breaks."
        ),
        parameters=[IDEMPOTENCY],
        request=UPLOAD_BODY,
        responses=UPLOAD_RESPONSES,
    )
    def post(self, request):
        return super().post(request)

    def options_of(self, request) -> dict:
        query = s.HoldingsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return dict(query.validated_data)


class PricesUploadView(UploadView):
    kind = ImportKind.PRICES
    required_permissions = {"POST": ["imports.add_importjob", "portfolios.add_price", "portfolios.change_price"]}

    @extend_schema(
        summary="Import a prices file",
        description="Columns `instrument_id, effective_at, value, source?`; `effective_at` a date or an RFC 3339 date-time.",
        parameters=[IDEMPOTENCY], request=UPLOAD_BODY,
        responses=UPLOAD_RESPONSES,
    )
    def post(self, request):
        return super().post(request)


class FxRatesUploadView(UploadView):
    kind = ImportKind.FX_RATES
    required_permissions = {"POST": ["imports.add_importjob", "portfolios.add_fxrate", "portfolios.change_fxrate"]}

    @extend_schema(
        summary="Import an FX rates file",
        description="Columns `base, quote, rate, effective_at`; `effective_at` a date or an RFC 3339 date-time.",
        parameters=[IDEMPOTENCY], request=UPLOAD_BODY,
        responses=UPLOAD_RESPONSES,
    )
    def post(self, request):
        return super().post(request)


IMPORT_ID = OpenApiParameter("import_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class ImportDetailView(ImportsView):
    @extend_schema(summary="Get an import", parameters=[IMPORT_ID], responses={200: s.ImportSerializer, **problems(404)})
    def get(self, request, import_id):
        return Response(s.ImportSerializer(self.get_job(import_id)).data)


class ImportAcceptView(IdempotentMixin, ImportsView):
    parser_classes = [JSONParser]
    required_permissions = {"POST": ["imports.change_importjob", "portfolios.change_position", "portfolios.change_cashaccount"]}

    @extend_schema(
        summary="Accept breaks of a reconciliation",
        description="Applies exactly the breaks named (all when `break_ids` is absent): each gets the file's value. "
                    "409 unless the import is AWAITING_ACCEPTANCE, or when the book moved since the reconciliation.",
        parameters=[IMPORT_ID], request=s.AcceptSerializer, responses={200: s.ImportSerializer, **problems(400, 404, 409)},
    )
    def post(self, request, import_id):
        body = s.AcceptSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = services.breaks_accept(job=self.get_job(import_id), break_ids=body.validated_data.get("break_ids"),
                                     user=request.user)
        return Response(s.ImportSerializer(job).data)


class Echo:
    def write(self, value):
        return value


class ImportBreaksCsvView(ImportsView):
    @extend_schema(
        summary="The break report of a reconciliation, as CSV",
        parameters=[IMPORT_ID],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="One line per break."), **problems(404)},
    )
    def get(self, request, import_id):
        job = self.get_job(import_id)
        writer = csv.writer(Echo())
        response = StreamingHttpResponse((writer.writerow(row) for row in break_report_rows(job)), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="breaks-{job.pk}.csv"'
        return response
