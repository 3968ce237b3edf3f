"""Every exception the engine raises on purpose, in one place.

``UsageError`` stops a run before anything is uploaded; the others fail one file, which the
putter turns into a ``PutResult`` so that the run goes on and counts it.
"""


class UsageError(Exception):
    """Bad input or an unusable target, found before anything is uploaded.

    The message is one line meant for the user; the CLI prints it as ``s3pput: error: MESSAGE``
    and exits 2, an Airflow task fails with it. Never put a secret in it.
    """


class FileChanged(Exception):
    """The file is not the one the walk saw, or it changed while we read it."""


class IntegrityError(Exception):
    """The server stored bytes other than the ones we sent (its ETag says so)."""
