from django.db import models
from django.utils import timezone
from knox.models import AbstractAuthToken


class ApiToken(AbstractAuthToken):
    """An API token. Only a SHA-512 digest of the key is stored (`digest`), with the
    key's first 15 characters (`token_key`) to find it; the key itself is shown once,
    when the token is made. A user may hold several, each with a name and an expiry."""

    name = models.CharField(max_length=100, blank=True, help_text="What or who uses it, e.g. \"custodian sync\".")

    class Meta:
        verbose_name = "API token"
        ordering = ["-created"]
        indexes = [models.Index(fields=["expiry"], name="apitoken_expiry")]

    def __str__(self):
        return f"{self.name or 'token'} {self.token_key[:8]}… ({self.user})"

    @property
    def expired(self) -> bool:
        return self.expiry is not None and self.expiry <= timezone.now()
