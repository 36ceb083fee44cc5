"""OCI regions, their realms and second-level domains: the host of a service in any region.

A service's host is ``<service>.<region>.oci.<second-level domain>``, and the domain is the realm's:
``oraclecloud.com`` for the commercial realm oc1 only; government, UK, EU-sovereign and dedicated realms use
others (API-NOTES section 9). The table below holds every region the ``oci`` SDK 2.189 knows (the test
suite checks it against ``oci.regions``); regions it does not know are read, as the SDK reads them, from
``~/.oci/regions-config.json`` (a JSON list) and the ``OCI_REGION_METADATA`` variable (one JSON object),
each entry ``{"realmKey", "realmDomainComponent", "regionKey", "regionIdentifier"}``. A region found
nowhere falls back to ``OCI_DEFAULT_REALM`` (a second-level domain) or else ``oraclecloud.com``, as the
SDK does. Standard library only, so it is cheap to import.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["REALM_DOMAINS", "REGIONS", "Region", "oci_domain", "resolve_region"]

log = logging.getLogger(__name__)

REGIONS_CONFIG_FILE = "~/.oci/regions-config.json"
REGION_METADATA_ENV = "OCI_REGION_METADATA"
DEFAULT_REALM_ENV = "OCI_DEFAULT_REALM"
_METADATA_KEYS = ("realmKey", "realmDomainComponent", "regionKey", "regionIdentifier")

#: Realm key -> second-level domain.
REALM_DOMAINS: dict[str, str] = {
    "oc1": "oraclecloud.com",
    "oc2": "oraclegovcloud.com",
    "oc3": "oraclegovcloud.com",
    "oc4": "oraclegovcloud.uk",
    "oc8": "oraclecloud8.com",
    "oc9": "oraclecloud9.com",
    "oc10": "oraclecloud10.com",
    "oc14": "oraclecloud14.com",
    "oc15": "oraclecloud15.com",
    "oc19": "oraclecloud.eu",
    "oc20": "oraclecloud20.com",
    "oc21": "oraclecloud21.com",
    "oc23": "oraclecloud23.com",
    "oc24": "oraclecloud24.com",
    "oc26": "oraclecloud26.com",
    "oc29": "oraclecloud29.com",
    "oc35": "oraclecloud35.com",
    "oc42": "oraclecloud42.com",
    "oc51": "oraclecloud51.com",
    "oc52": "oraclecloud52.com",
}

# Realm -> "key=identifier" of its regions (the three-letter key is the region's short name).
_REGIONS_BY_REALM: dict[str, str] = {
    "oc1": (
        "lej=af-casablanca-1 jnb=af-johannesburg-1 hsg=ap-batam-1 yny=ap-chuncheon-1 onm=ap-delhi-1 "
        "hyd=ap-hyderabad-1 jbp=ap-kulai-2 mel=ap-melbourne-1 bom=ap-mumbai-1 kix=ap-osaka-1 icn=ap-seoul-1 "
        "sin=ap-singapore-1 xsp=ap-singapore-2 syd=ap-sydney-1 nrt=ap-tokyo-1 yul=ca-montreal-1 "
        "yyz=ca-toronto-1 ams=eu-amsterdam-1 fra=eu-frankfurt-1 mad=eu-madrid-1 orf=eu-madrid-3 "
        "mrs=eu-marseille-1 lin=eu-milan-1 cdg=eu-paris-1 arn=eu-stockholm-1 nrq=eu-turin-1 zrh=eu-zurich-1 "
        "mtz=il-jerusalem-1 auh=me-abudhabi-1 dxb=me-dubai-1 jed=me-jeddah-1 ruh=me-riyadh-1 "
        "mty=mx-monterrey-1 qro=mx-queretaro-1 bog=sa-bogota-1 scl=sa-santiago-1 gru=sa-saopaulo-1 "
        "vap=sa-valparaiso-1 vcp=sa-vinhedo-1 cwl=uk-cardiff-1 lhr=uk-london-1 iad=us-ashburn-1 "
        "ord=us-chicago-1 phx=us-phoenix-1 aga=us-saltlake-2 sjc=us-sanjose-1"
    ),
    "oc2": "lfi=us-langley-1 luf=us-luke-1",
    "oc3": "ric=us-gov-ashburn-1 pia=us-gov-chicago-1 tus=us-gov-phoenix-1",
    "oc4": "brs=uk-gov-cardiff-1 ltn=uk-gov-london-1",
    "oc8": "nja=ap-chiyoda-1 ukb=ap-ibaraki-1",
    "oc9": "mct=me-dcc-muscat-1 ibr=me-ibri-1",
    "oc10": "wga=ap-dcc-canberra-1",
    "oc14": (
        "ork=eu-dcc-dublin-1 snn=eu-dcc-dublin-2 bgy=eu-dcc-milan-1 mxp=eu-dcc-milan-2 dus=eu-dcc-rating-1 "
        "dtm=eu-dcc-rating-2"
    ),
    "oc15": "dac=ap-dcc-gazipur-1",
    "oc19": "str=eu-frankfurt-2 vll=eu-madrid-2",
    "oc20": "beg=eu-jovanovac-1",
    "oc21": "vve=me-alrayyan-1 doh=me-dcc-doha-1",
    "oc23": "ebb=us-somerset-1 ebl=us-thames-1",
    "oc24": "avf=eu-crissier-1 avz=eu-dcc-zurich-1",
    "oc26": "ahu=me-abudhabi-3 rba=me-alain-1",
    "oc29": "rkt=me-abudhabi-2 shj=me-abudhabi-4",
    "oc35": "bno=ap-chuncheon-2 dtz=ap-seoul-2 dln=ap-suwon-1",
    "oc42": "yxj=us-ashburn-2 pgc=us-newark-1",
    "oc51": "jsk=eu-budapest-1",
    "oc52": "hnw=sa-riodejaneiro-1",
}


@dataclass(frozen=True)
class Region:
    identifier: str
    key: str | None
    realm: str | None
    domain: str

    @property
    def oci_domain(self) -> str:
        """``<region>.oci.<domain>``: what a service name is put in front of."""
        return f"{self.identifier}.oci.{self.domain}"


def _built_in() -> dict[str, Region]:
    table: dict[str, Region] = {}
    for realm, pairs in _REGIONS_BY_REALM.items():
        for pair in pairs.split():
            key, identifier = pair.split("=")
            table[identifier] = Region(identifier, key, realm, REALM_DOMAINS[realm])
    return table


#: Region identifier -> Region, for every region the SDK knows.
REGIONS: Mapping[str, Region] = _built_in()
_SHORT_NAMES = {region.key: region for region in REGIONS.values() if region.key}

_external_lock = threading.Lock()
_external_cache: dict[tuple[Any, ...], dict[str, Region]] = {}


def _from_metadata(entry: Any, source: str) -> Region | None:
    if not isinstance(entry, Mapping) or any(not entry.get(k) or not isinstance(entry[k], str) for k in _METADATA_KEYS):
        log.warning("ignoring an OCI region entry in %s: it needs non-empty %s", source, ", ".join(_METADATA_KEYS))
        return None
    return Region(
        entry["regionIdentifier"].lower(),
        entry["regionKey"].lower(),
        entry["realmKey"].lower(),
        entry["realmDomainComponent"].lower(),
    )


def _external_regions() -> dict[str, Region]:
    """Regions from the config file and the variable (the file's entries first, as in the SDK)."""
    path = os.path.expanduser(REGIONS_CONFIG_FILE)
    try:
        mtime: int | None = os.stat(path).st_mtime_ns
    except OSError:
        mtime = None
    env = os.environ.get(REGION_METADATA_ENV) or ""
    cache_key = (path, mtime, env)
    with _external_lock:
        cached = _external_cache.get(cache_key)
    if cached is not None:
        return cached
    found: dict[str, Region] = {}
    if mtime is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                entries = json.load(fh)
        except (OSError, ValueError) as exc:
            log.warning("could not read OCI regions file %r: %s", path, type(exc).__name__)
            entries = []
        for entry in entries if isinstance(entries, list) else []:
            if region := _from_metadata(entry, path):
                found.setdefault(region.identifier, region)
    if env:
        try:
            entry = json.loads(env)
        except ValueError:
            log.warning("%s is not JSON; ignored", REGION_METADATA_ENV)
        else:
            if region := _from_metadata(entry, REGION_METADATA_ENV):
                found.setdefault(region.identifier, region)
    with _external_lock:
        _external_cache.clear()
        _external_cache[cache_key] = found
    return found


def resolve_region(name: str) -> Region:
    """The region for an identifier (``us-ashburn-1``) or short name (``iad``), any case."""
    wanted = name.strip().lower()
    if not wanted:
        raise ValueError("OCI region is empty")
    if region := REGIONS.get(wanted) or _SHORT_NAMES.get(wanted):
        return region
    external = _external_regions()
    if region := external.get(wanted):
        return region
    for region in external.values():
        if region.key == wanted:
            return region
    fallback = os.environ.get(DEFAULT_REALM_ENV)
    domain = fallback.strip().lower() if fallback and fallback.strip() else REALM_DOMAINS["oc1"]
    log.warning(
        "OCI region %r is unknown (not in the built-in table, %s or %s); assuming domain %s",
        wanted,
        REGIONS_CONFIG_FILE,
        REGION_METADATA_ENV,
        domain,
    )
    return Region(wanted, None, None, domain)


def oci_domain(region: str) -> str:
    """``<region>.oci.<second-level domain>`` for a region identifier or short name."""
    return resolve_region(region).oci_domain
