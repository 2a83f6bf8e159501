"""Errors the user can fix: their input (bad params, bad data; exit code 2) or a fault around the project
(exit code 3). Each is reported as one line by :mod:`pipeline.cli`."""


class UserError(Exception):
    """Something in the user's params or data is wrong; the message says what and where."""


class ConfigError(UserError):
    """params.yaml does not match the schema."""


class DataError(UserError):
    """A dataset file is missing or malformed."""


class OutsideFault(Exception):
    """Something around the project failed (a tracking server, a store, the file system): not the user's
    params and not a bug. The message says which and what to do; reported as one line, exit code 3."""
