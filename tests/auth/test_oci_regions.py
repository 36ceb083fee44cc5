"""OCI regions: every region the SDK knows gets its realm's domain; new ones come from the SDK's sources."""

from __future__ import annotations

import json

import pytest

from airflow_provider_modelreg.auth import oci_regions
from airflow_provider_modelreg.auth.oci_regions import REGIONS, resolve_region
from airflow_provider_modelreg.hooks.mlflow import OCIDataPlatformMlflowHook
from airflow_provider_modelreg.hooks.oci_vision import OCIVisionHook


@pytest.fixture(autouse=True)
def no_external_regions(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("OCI_REGION_METADATA", "OCI_DEFAULT_REALM"):
        monkeypatch.delenv(name, raising=False)


def test_the_table_is_the_sdks_for_every_region_realm_domain_and_short_name():
    regions = pytest.importorskip("oci.regions")
    assert set(REGIONS) == set(regions.REGION_REALMS)
    for identifier, region in REGIONS.items():
        assert region.realm == regions.REGION_REALMS[identifier], identifier
        assert region.domain == regions.REALMS[region.realm], identifier
        assert regions.REGIONS_SHORT_NAMES[region.key] == identifier
    assert sum(region.domain != "oraclecloud.com" for region in REGIONS.values()) == 39


def test_default_hosts_match_the_sdks_endpoint_for_every_region():
    regions = pytest.importorskip("oci.regions")
    for identifier in REGIONS:
        # The SDK's own templates: AIServiceVisionClient's, and the one aidp-python-client's MLOpsClient uses.
        for hook, template in (
            (OCIVisionHook, "https://vision.aiservice.{region}.oci.{secondLevelDomain}"),
            (OCIDataPlatformMlflowHook, "https://datalake.{region}.oci.{secondLevelDomain}"),
        ):
            expected = regions.endpoint_for("x", region=identifier, service_endpoint_template=template)
            assert hook.default_endpoint(identifier) == expected


def test_short_names_and_case_resolve():
    assert resolve_region("LTN").identifier == "uk-gov-london-1"
    assert OCIVisionHook.default_endpoint("us-gov-ashburn-1").endswith(".oci.oraclegovcloud.com")
    assert OCIVisionHook.default_endpoint("eu-frankfurt-2").endswith(".oci.oraclecloud.eu")


NEW = {
    "realmKey": "OC99",
    "realmDomainComponent": "oraclecloud99.com",
    "regionKey": "ZZZ",
    "regionIdentifier": "xx-new-1",
}


def test_regions_config_file_and_variable_add_regions(tmp_path, monkeypatch):
    (tmp_path / ".oci").mkdir()
    (tmp_path / ".oci" / "regions-config.json").write_text(json.dumps([NEW]))
    assert resolve_region("xx-new-1").oci_domain == "xx-new-1.oci.oraclecloud99.com"
    assert resolve_region("zzz").identifier == "xx-new-1"
    env = NEW | {"regionKey": "YYY", "regionIdentifier": "xx-env-1", "realmDomainComponent": "example.test"}
    monkeypatch.setenv("OCI_REGION_METADATA", json.dumps(env))
    assert OCIVisionHook.default_endpoint("xx-env-1") == "https://vision.aiservice.xx-env-1.oci.example.test"


def test_the_sdk_reads_the_same_entries_the_same_way(tmp_path, monkeypatch):
    regions = pytest.importorskip("oci.regions")
    monkeypatch.setenv("OCI_REGION_METADATA", json.dumps(NEW))
    regions._reset_region_info()
    try:
        sdk = regions.endpoint_for(
            "x", region="xx-new-1", service_endpoint_template="https://v.{region}.oci.{secondLevelDomain}"
        )
        assert sdk == "https://v." + resolve_region("xx-new-1").oci_domain
    finally:
        regions._reset_region_info()


def test_unknown_regions_fall_back_as_the_sdk_does(monkeypatch, caplog):
    assert resolve_region("xx-nowhere-1").domain == "oraclecloud.com"
    assert "unknown" in caplog.text
    monkeypatch.setenv("OCI_DEFAULT_REALM", "oraclecloud77.com")
    assert resolve_region("xx-nowhere-1").domain == "oraclecloud77.com"
    assert oci_regions.oci_domain("xx-nowhere-1") == "xx-nowhere-1.oci.oraclecloud77.com"
