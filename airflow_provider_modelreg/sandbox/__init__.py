"""A local server that speaks the five services' APIs, for example DAGs, tests and offline development.

Run it with ``python -m airflow_provider_modelreg.sandbox``. Nothing a DAG imports imports this package.
"""
