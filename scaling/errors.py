"""The exception types for errors a user can cause, and the exit codes the CLI uses.

Anything a user can get wrong (a bad config key, a missing data directory, a corrupt shard, an
unavailable launcher) raises :class:`ScalingError` with a one-line message that says what to do.
The CLI prints that line and exits with :data:`EXIT_USER_ERROR`; it never shows a traceback for it.
"""

from data_pipelines.errors import DataError, UserError

EXIT_OK = 0
EXIT_FAILED = 1  # an unexpected crash (a bug, an out-of-memory): the traceback is shown
EXIT_USER_ERROR = 2  # bad input: config, data, spec, paths
EXIT_DIVERGED = 3  # a run stopped on a NaN/Inf or too-large loss: a result, not a crash
EXIT_STOPPED = 143  # stopped by SIGTERM (preemption, requeue, scancel): no result, resumable

ScalingError = UserError  # the one user-error type; data_pipelines.errors defines it for every package

__all__ = ["ScalingError", "UserError", "ConfigError", "DataError", "EXIT_OK", "EXIT_FAILED",
           "EXIT_USER_ERROR", "EXIT_DIVERGED", "EXIT_STOPPED"]


class ConfigError(UserError):
    """An invalid configuration: unknown key, wrong type, unknown preset or inconsistent values."""
