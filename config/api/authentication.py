"""API authentication that tells the audit trail who is acting."""

from rest_framework import authentication

from audit.context import act_as_api_token


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication; once the token is accepted, its user is the actor of
    every audit entry the request writes, marked "api-token" with the key's first 8
    characters. DRF authenticates inside the view, after the middleware: this is the
    first moment the user is known."""

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        act_as_api_token(user=user, key=key)
        return user, token
