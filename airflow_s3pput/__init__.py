"""airflow-s3pput: s3-parallel-put as an engine, a CLI and an Apache Airflow provider.

The engine modules import neither Airflow nor each other's side effects; only
``airflow_s3pput.provider`` knows Airflow.
"""

__version__ = "0.1.0"
