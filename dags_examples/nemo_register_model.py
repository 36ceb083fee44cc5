"""Register a fine-tuned model entity on the NVIDIA NeMo Platform and wait, deferred, until the platform has
analysed its checkpoint fileset and filled the entity's ``spec``.

Connection ``nemo_default`` (type ``nemo_platform``): host = the platform's base URL (``NMP_BASE_URL``),
password = access token when the platform has auth enabled (leave empty otherwise). Point it at the sandbox
(``python -m airflow_provider_modelreg.sandbox``) to try the DAG without a platform.
"""

from __future__ import annotations

import datetime as dt

from _settings import POLL_SECONDS
from airflow.sdk import DAG

from airflow_provider_modelreg.operators.nemo import NemoCreateModelOperator

with DAG(
    dag_id="nemo_register_model",
    description="Register a fine-tuned model entity on the NeMo Platform and wait for its spec",
    schedule="@weekly",
    start_date=dt.datetime(2025, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2)},
    params={
        "workspace": "default",
        "model_name": "support-bot-sft",
        "fileset": "default/support-bot-sft-checkpoint",
        "base_model": "default/llama-3.1-8b-instruct",
        "project": "support-bot",
    },
    tags=["nemo", "model-registry"],
) as dag:
    # [START howto_operator_nemo_create_model]
    NemoCreateModelOperator(
        task_id="register_model",
        conn_id="nemo_default",
        workspace="{{ params.workspace }}",
        # One entity per run: the name carries the run's date, so a weekly run never collides with the last.
        name="{{ params.model_name }}-{{ dag_run.run_after | ts_nodash | lower }}",  # the platform refuses upper case
        project="{{ params.project }}",
        description="Full-weight SFT of {{ params.base_model }}, registered by {{ dag.dag_id }}",
        fileset="{{ params.fileset }}",
        base_model="{{ params.base_model }}",
        finetuning_type="all_weights",
        backend_format="OPENAI_CHAT",
        custom_fields={"airflow_dag_id": "{{ dag.dag_id }}", "airflow_run_id": "{{ run_id }}"},
        # trust_remote_code stays False: only a pre-approved checkpoint source or an admin may switch it on.
        deferrable=True,
        poll_interval=POLL_SECONDS,
        wait_timeout=2 * 3600,
    )
    # [END howto_operator_nemo_create_model]
