"""Errors the user can fix (bad params, bad data): reported as one line, exit code 2."""


class UserError(Exception):
    """Something in the user's params or data is wrong; the message says what and where."""


class ConfigError(UserError):
    """params.yaml does not match the schema."""


class DataError(UserError):
    """A dataset file is missing or malformed."""
