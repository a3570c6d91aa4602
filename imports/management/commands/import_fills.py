"""`manage.py import_fills FILE`: apply a fills file (CSV or XLSX) to the trade orders in
this process (no worker needed) and print its outcome (docs/imports.md "Fills file")."""

from imports.models import ImportKind

from .import_holdings import Command as HoldingsCommand


class Command(HoldingsCommand):
    help = ("Apply a fills file (execution_id, instrument_id, side, units, price[, currency]) to the trade orders "
            "in execution: partial fills shared pro rata, rounded to the block size.")
    kind = ImportKind.FILLS

    def add_arguments(self, parser):
        parser.add_argument("file")
