"""The one exception type that the CLI and the operators turn into a one-line message."""


class UsageError(Exception):
    """Bad input or an unusable target, found before anything is uploaded.

    The message is one line meant for the user; the CLI prints it as ``s3pput: error: MESSAGE``
    and exits 2, an Airflow task fails with it. Never put a secret in it.
    """
