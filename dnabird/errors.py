"""User-facing errors.

Every failure a user can fix (bad input, bad configuration, failed download) raises a
:class:`DnabirdError` subclass whose message is one line: what went wrong, where (file,
line or record), and what to do. The CLI prints it as ``dnabird: error: <message>`` and
exits with status 2; any other exception is a bug and exits 1 with its traceback.
"""

from __future__ import annotations


class DnabirdError(Exception):
    """Base class of every error meant for the user rather than the developer."""

    exit_code = 2


class InputError(DnabirdError):
    """An input file or value is missing, malformed or inconsistent (FASTA, shards, shapes)."""


class ConfigError(DnabirdError):
    """A parameter or configuration file asks for something invalid or contradictory."""


class DownloadError(DnabirdError):
    """A download failed or its checksum did not match the manifest."""
