"""Kept for code that imported the metadata from here; the entry point names
``airflow_s3pput.provider_info``, which is outside this package so that Airflow's discovery
never imports the operators (see that module)."""

from airflow_s3pput.provider_info import INTEGRATION, get_provider_info

__all__ = ["INTEGRATION", "get_provider_info"]
