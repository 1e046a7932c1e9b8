"""The base of every user-caused error in the project.

It lives here, at the bottom of the package flow (data_pipelines ← scaling ← sweeps), so that every
package can raise it; :mod:`scaling.errors` derives its own types from it. The CLI catches
:class:`UserError`, prints its one-line message and exits with code 2.
"""


class UserError(Exception):
    """A user-caused error: the message is one line that says what went wrong and what to do."""


class DataError(UserError):
    """Missing, unreadable or corrupt input data or prepared shards."""
