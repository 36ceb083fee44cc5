"""Apache Airflow provider: model training, run logging and model-version registration on five ML platforms."""

__version__ = "0.1.0"
