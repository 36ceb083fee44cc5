"""Provider metadata: every declared class exists, and the Python form methods match conn-fields."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

import pytest

from airflow_provider_modelreg.get_provider_info import CONNECTION_TYPES, get_provider_info


def load(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_the_entry_point_returns_the_provider_info():
    (entry,) = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider_modelreg")
    ]
    assert entry.load()() == get_provider_info()


@pytest.mark.parametrize("definition", CONNECTION_TYPES, ids=lambda d: d["connection-type"])
def test_each_connection_type_names_its_hook_and_the_hook_agrees(definition):
    hook = load(definition["hook-class-name"])
    assert hook.conn_type == definition["connection-type"]
    behaviour = hook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == definition["ui-field-behaviour"]["hidden-fields"]
    assert behaviour["relabeling"] == definition["ui-field-behaviour"]["relabeling"]


@pytest.mark.parametrize("definition", CONNECTION_TYPES, ids=lambda d: d["connection-type"])
def test_secret_fields_are_declared_sensitive(definition):
    secret_words = ("private_key", "passphrase", "token", "secret", "api_key")
    for name, field in definition["conn-fields"].items():
        if any(word in name for word in secret_words) and not name.endswith("_file"):
            assert field["schema"].get("format") == "password", name


def test_every_declared_module_and_class_imports():
    info = get_provider_info()
    for group in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[group]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for link in info["extra-links"]:
        load(link)


def test_airflow_providers_manager_sees_the_connection_types():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-provider-modelreg" in manager.providers
    hooks = manager.hooks
    for definition in CONNECTION_TYPES:
        assert hooks[definition["connection-type"]] is not None, definition["connection-type"]
