"""OCI request signing: requests signed per second by the provider's OCISigner, the oci SDK's Signer, and
a bare RSA-SHA256 ``private_key.sign`` of the same signing string.

Same key (RSA 2048), same requests: a GET with a query string and a POST with a ~1 KB JSON body. The
provider signs with ``OCISigner.sign_headers``; the SDK signs a copy of a prepared ``requests`` request
(``oci.signer.Signer(prepared)``, the copy's own cost is measured and subtracted). A check first proves the
two produce the same Authorization header for the same date.

Rates are per CPU-second of one core (CPU time of this process, not wall time), so a busy shared machine
slows the figures less; the variants run in short interleaved slices, repeated, and the medians are
reported. Targets: the provider is at least as fast as the SDK and within 10% of the bare sign.

    .venv/bin/python benchmarks/oci_signing.py [--quick] [--rounds 9] [--slice 0.5]
"""

from __future__ import annotations

import argparse
import email.utils
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, conditions, median, print_table, spread

HOST = "vision.aiservice.us-ashburn-1.oci.oraclecloud.com"
GET_PATH = "/20220125/models?compartmentId=ocid1.compartment.oc1..aaaaaaaabench&limit=100&lifecycleState=ACTIVE"
POST_PATH = "/20220125/models"
TENANCY = "ocid1.tenancy.oc1..aaaaaaaabenchtenancy"
USER = "ocid1.user.oc1..aaaaaaaabenchuser"
FINGERPRINT = "12:34:56:78:9a:bc:de:f0:12:34:56:78:9a:bc:de:f0"


def post_body() -> bytes:
    """A CreateModel-like body of about 1 KB."""
    body = {
        "displayName": "bench-model",
        "description": "x" * 300,
        "modelType": "IMAGE_CLASSIFICATION",
        "compartmentId": "ocid1.compartment.oc1..aaaaaaaabench",
        "projectId": "ocid1.aivisionproject.oc1.iad.aaaaaaaabench",
        "isQuickMode": True,
        "trainingDataset": {
            "datasetType": "OBJECT_STORAGE",
            "namespaceName": "benchns",
            "bucketName": "bench-bucket",
            "object": "datasets/" + "d" * 200 + ".jsonl",
        },
        "freeformTags": {f"tag{i}": f"value-{i}" for i in range(12)},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def signature_params(header: str) -> dict[str, str]:
    """The parameters of a ``Signature k="v",...`` header (their order differs between signers)."""
    return dict(re.findall(r'(\w+)="([^"]*)"', header.removeprefix("Signature ")))


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per CPU-second of ``fn`` over about ``seconds`` of CPU time."""
    count, batch = 0, 16
    start = time.process_time()
    while True:
        for _ in range(batch):
            fn()
        count += batch
        used = time.process_time() - start
        if used >= seconds:
            return count / used


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds of 0.3 s slices")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--slice", type=float, default=0.5, help="CPU seconds per variant per round")
    args = parser.parse_args()
    rounds, slice_s = (5, 0.3) if args.quick else (args.rounds, args.slice)

    import requests
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from oci.signer import Signer

    from airflow_provider_modelreg.auth.oci import OCISigner, load_private_key

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key_id = f"{TENANCY}/{USER}/{FINGERPRINT}"
    ours = OCISigner(key_id, load_private_key(pem=pem))
    sdk = Signer(TENANCY, USER, FINGERPRINT, None, private_key_content=pem)
    body = post_body()

    def prepared(method: str, path: str, data: bytes | None, date: str | None = None) -> requests.PreparedRequest:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if date:
            headers["date"] = date
        return requests.Request(method, f"https://{HOST}{path}", headers=headers, data=data).prepare()

    # Same date, same request: the two signers must agree byte for byte, or the comparison is meaningless.
    date = email.utils.formatdate(usegmt=True)
    for method, path, data in (("GET", GET_PATH, None), ("POST", POST_PATH, body)):
        req = prepared(method, path, data, date)
        theirs = sdk(req.copy()).headers["authorization"]
        headers = {"date": date, "content-type": "application/json"}
        mine = ours.sign_headers(method, path, HOST, headers, data or b"")["authorization"]
        if signature_params(mine) != signature_params(theirs):
            print(f"{method}: the provider's and the SDK's Authorization headers differ; not comparable")
            return 1
    print(f"oci_signing: {conditions()}")
    print(f"RSA 2048; same Authorization parameters from both signers for GET and POST ({len(body)} B body)")

    pad, sha = padding.PKCS1v15(), hashes.SHA256()
    get_req, post_req = prepared("GET", GET_PATH, None), prepared("POST", POST_PATH, body)
    get_headers = {"content-type": "application/json", "accept": "application/json"}
    post_headers = dict(get_headers)
    # The bare sign gets the very signing strings the signers build.
    get_string = f"date: {date}\n(request-target): get {GET_PATH}\nhost: {HOST}".encode()
    digest = ours.sign_headers("POST", POST_PATH, HOST, {"date": date}, body)["x-content-sha256"]
    post_string = (
        f"date: {date}\n(request-target): post {POST_PATH}\nhost: {HOST}\ncontent-length: {len(body)}\n"
        f"content-type: application/json\nx-content-sha256: {digest}"
    ).encode()

    variants: dict[str, Callable[[], object]] = {
        "provider GET": lambda: ours.sign_headers("GET", GET_PATH, HOST, get_headers, b""),
        "provider POST": lambda: ours.sign_headers("POST", POST_PATH, HOST, post_headers, body),
        "sdk GET": lambda: sdk(get_req.copy()),
        "sdk POST": lambda: sdk(post_req.copy()),
        "copy GET": get_req.copy,
        "copy POST": post_req.copy,
        "bare GET": lambda: key.sign(get_string, pad, sha),
        "bare POST": lambda: key.sign(post_string, pad, sha),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm-up
        rate(fn, 0.05)
    for r in range(rounds):
        order = list(variants)
        order = order[r % len(order) :] + order[: r % len(order)]  # rotate, so no variant always goes first
        for name in order:
            samples[name].append(rate(variants[name], slice_s if not name.startswith("copy") else slice_s / 4))
        print(
            f"  round {r + 1}/{rounds}: "
            + "  ".join(f"{n} {samples[n][-1]:,.0f}/s" for n in variants if not n.startswith("copy")),
            flush=True,
        )

    def per_sec(name: str) -> float:
        return median(samples[name])

    def sdk_rate(method: str) -> float:
        # Take the request copy (the harness's doing, not the SDK's) out of the SDK's time per request.
        per_call = 1 / per_sec(f"sdk {method}") - 1 / per_sec(f"copy {method}")
        return 1 / per_call

    rows: list[Row] = []
    for method in ("GET", "POST"):
        mine, theirs, bare = per_sec(f"provider {method}"), sdk_rate(method), per_sec(f"bare {method}")
        rows.append(
            Row(
                f"{method} signed/s vs oci SDK Signer",
                f"{mine:,.0f}/s ({spread(samples[f'provider {method}'])})",
                f"SDK {theirs:,.0f}/s (x{mine / theirs:.2f})",
                ">= SDK",
                mine >= theirs,
            )
        )
        rows.append(
            Row(
                f"{method} signed/s vs bare RSA-SHA256 sign",
                f"{mine:,.0f}/s ({mine / bare:.1%} of bare)",
                f"bare {bare:,.0f}/s ({spread(samples[f'bare {method}'])})",
                ">= 90% of bare",
                mine >= 0.9 * bare,
            )
        )
        rows.append(
            Row(
                f"{method} overhead over the RSA sign, per request",
                f"{(1 / mine - 1 / bare) * 1e6:.1f} us",
                f"SDK {(1 / theirs - 1 / bare) * 1e6:.1f} us",
                "-",
                None,
            )
        )
    print_table(f"OCI signing (medians of {rounds} interleaved rounds, per CPU-second of one core)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
