"""Exceptions that the CLI maps to exit codes (2 = bad input, 1 = failure)."""

from __future__ import annotations


class NextbestError(Exception):
    """Base class. ``exit_code`` is what the CLI returns."""

    exit_code: int = 1


class BadInputError(NextbestError):
    """Input the user can fix: a file, an argument, a config value. Exit code 2."""

    exit_code = 2


class ConfigError(BadInputError):
    """The configuration is invalid; the message names the file, field and fix."""


class NotFoundError(BadInputError):
    """A customer, decision, model or snapshot that was asked for does not exist."""
