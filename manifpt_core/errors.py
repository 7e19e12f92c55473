"""Errors that carry the offending value and the fix, for users to act on."""


class ManifptError(Exception):
    """Base class of every error manifpt raises on purpose."""


class InputError(ManifptError, ValueError):
    """Bad user input: a missing or corrupt file, an unknown setting, mixed image sizes.

    The message names the path or value and says how to fix it.
    """


class StoreError(ManifptError, RuntimeError):
    """The store is inconsistent with what a step expects (e.g. a missing upstream array)."""
