"""Errors meant for the user: entry scripts print them as one line and exit non-zero."""


class UserError(Exception):
    """A problem with the user's input (config, paths, data): reported without a traceback."""


class UnknownNameError(UserError, KeyError):
    """An unknown registry name (model, dataset, optimiser, ...)."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


class WriteError(UserError, OSError):
    """A file of the run could not be written (full disk, no permission, read-only folder)."""


class DivergenceError(UserError, FloatingPointError):
    """Training produced a non-finite loss (reported with the last good checkpoint)."""


class AnnotationError(UserError, ValueError):
    """A malformed dataset annotation file: one line ``<file>:<row>: <what> (expected <format>)``."""


class RunFinished(Exception):
    """The run folder already holds this run, finished: nothing to do (exit status 0)."""
