from airflow_s3pput.cli import entrypoint

entrypoint()
