"""Weekly: clone a HappyRobot model, train it on the latest samples, and wait (deferred) until it is active.

Connection ``happyrobot_default``: password = API key (host optional, e.g. the sandbox's
``http://127.0.0.1:8765/api/v1``). Runs unchanged against the sandbox and the real service.
"""

from __future__ import annotations

import datetime as dt

from _settings import POLL_SECONDS
from airflow.sdk import DAG, Param

from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator
from airflow_provider_modelreg.sensors.happyrobot import HappyRobotModelSensor

with DAG(
    dag_id="happyrobot_train",
    schedule="@weekly",
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,  # list params stay lists
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2)},
    params={
        "use_case_id": Param("uc-support", type="string"),
        "from_model_id": Param("0123456789abcdef01234567", type="string", minLength=24, maxLength=24),
        "train_sample_ids": Param(["sample-1", "sample-2", "sample-3"], type="array"),
        "test_sample_ids": Param(["sample-9"], type="array"),
    },
    tags=["modelreg", "happyrobot"],
) as dag:
    # [START howto_operator_happyrobot_create_model]
    train = HappyRobotCreateModelOperator(
        task_id="train_model",
        use_case_id="{{ params.use_case_id }}",
        name="support-bot-{{ dag_run.run_after | ts_nodash }}",
        from_model_id="{{ params.from_model_id }}",
        train_sample_ids="{{ params.train_sample_ids }}",
        test_sample_ids="{{ params.test_sample_ids }}",
        deferrable=True,
        poll_interval=POLL_SECONDS,
        wait_timeout=6 * 3600,
    )
    # [END howto_operator_happyrobot_create_model]
    # A second look from a sensor, as a downstream DAG that did not create the model would do.
    # [START howto_sensor_happyrobot_model]
    confirm = HappyRobotModelSensor(
        task_id="confirm_active",
        model_id="{{ ti.xcom_pull(task_ids='train_model')['id'] }}",
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=600,
    )
    # [END howto_sensor_happyrobot_model]
    train >> confirm
