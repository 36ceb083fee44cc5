"""Assets the retraining pipelines update when they register a model version (imported by the DAGs)."""

from __future__ import annotations

from airflow.sdk import Asset

VISION_MODEL = Asset("modelreg/vision-defect-detector")
HAPPYROBOT_MODEL = Asset("modelreg/happyrobot-support-bot")
NEMO_MODEL = Asset("modelreg/nemo-support-llm")
ALL_MODELS = (VISION_MODEL, HAPPYROBOT_MODEL, NEMO_MODEL)
