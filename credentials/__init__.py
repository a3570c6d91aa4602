"""API tokens: stored hashed (django-rest-knox), named, several per user, expiring,
revocable in the admin (docs/security.md, "API tokens")."""
