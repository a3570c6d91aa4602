import secrets
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from portfolios.services.demo import demo_book_load
from rebalancing.services.demo import demo_automation_install


class Command(BaseCommand):
    help = (
        "Load the demo book (instruments, 90 days of prices and FX, allocations, accounts), its automation "
        "(allocation strategies, savings plans) and an admin login."
    )

    def add_arguments(self, parser):
        parser.add_argument("--accounts", type=int, default=300, help="How many accounts (default 300).")
        parser.add_argument("--days", type=int, default=90, help="Days of prices and FX rates (default 90).")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--no-admin", action="store_true", help="Do not create or reset the admin login.")

    def handle(self, *args, accounts, days, seed, no_admin, **options):
        started = time.perf_counter()
        summary = demo_book_load(accounts=accounts, days=days, seed=seed)
        self.stdout.write(
            f"Demo book: {summary.instruments} instruments, {summary.prices} new prices, {summary.fx_rates} new FX rates, "
            f"{summary.allocations} allocations, {summary.accounts} new accounts with {summary.positions} positions "
            f"({time.perf_counter() - started:.1f}s)."
        )
        if summary.accounts == 0:
            self.stdout.write("The book already had accounts; none were added.")
        automation = demo_automation_install()
        self.stdout.write(
            f"Automation: {automation.strategies} new allocation strategies, {automation.savings_plans} new savings plans."
        )
        if not no_admin:
            password = secrets.token_urlsafe(12)
            user, _ = get_user_model().objects.get_or_create(username="admin", defaults={"email": "admin@localhost"})
            user.is_staff = user.is_superuser = True
            user.set_password(password)
            user.save()
            self.stdout.write(self.style.SUCCESS(f"Admin login: admin / {password}  (reset on every run of this command)"))
