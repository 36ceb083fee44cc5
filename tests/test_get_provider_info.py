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
    assert hook.hook_name == definition["hook-name"]  # Airflow 3.0 and 3.1 list the type by the class's name
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


def test_the_provider_info_is_valid_against_airflows_provider_schema():
    """The schema the installed Airflow validates providers with; every integration names its vendor docs."""
    import json
    from pathlib import Path

    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    for integration in info["integrations"]:
        assert integration.get("external-doc-url", "").startswith("https://"), integration["integration-name"]
    names = {i["integration-name"] for i in info["integrations"]}
    for group in ("hooks", "operators", "sensors", "triggers"):
        assert {entry["integration-name"] for entry in info[group]} <= names, group


def trigger_classes_in_the_package() -> set[str]:
    """Every BaseTrigger subclass defined in a module of the package (sandbox and test helpers aside)."""
    import inspect
    import pkgutil

    from airflow.triggers.base import BaseTrigger

    import airflow_provider_modelreg

    found = set()
    for module_info in pkgutil.walk_packages(airflow_provider_modelreg.__path__, "airflow_provider_modelreg."):
        if ".sandbox" in module_info.name or module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseTrigger) and cls.__module__ == module.__name__ and not inspect.isabstract(cls):
                found.add(f"{cls.__module__}.{cls.__name__}")
    return found


def test_airflow_lists_every_trigger_the_package_ships():
    """What `airflow providers triggers` prints (ProvidersManager's list: one row per declared module)."""
    from airflow.providers_manager import ProvidersManager

    shipped = trigger_classes_in_the_package()
    assert {
        "airflow_provider_modelreg.lifecycle.LifecycleTrigger",
        "airflow_provider_modelreg.registry_watch.MlflowRegistryEventTrigger",
    } <= shipped
    listed = {
        trigger.trigger_class_name
        for trigger in ProvidersManager().trigger
        if trigger.package_name == "airflow-provider-modelreg"
    }
    assert {path.rpartition(".")[0] for path in shipped} <= listed, listed


def test_airflow_shows_the_docs_site_as_the_providers_documentation():
    """Airflow reads a provider's documentation link from its package's Project-URL "Documentation"."""
    import re
    from pathlib import Path

    from airflow.providers_manager import ProvidersManager

    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    urls = dict(re.findall(r'^(Documentation|Source|Changelog) = "(.+)"$', pyproject, re.M))
    assert set(urls) == {"Documentation", "Source", "Changelog"}
    shown = ProvidersManager().providers["airflow-provider-modelreg"].data.get("documentation-url") or ""
    from airflow_provider_modelreg.version_compat import AIRFLOW_V_3_1_PLUS

    if not AIRFLOW_V_3_1_PLUS:  # Airflow 3.0's providers manager does not read Project-URL (3.1 does)
        assert shown == ""
        return
    # Airflow 3.2 keeps the space after the comma of "Documentation, https://..."; 3.3 strips it.
    assert shown.strip() == urls["Documentation"], (
        "the installed metadata is older than pyproject.toml: reinstall (./dev setup)"
    )
