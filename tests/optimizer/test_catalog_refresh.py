"""refresh_catalog against servers: moto for ec2.describe_instance_types, and a local stub
speaking the Price List JSON protocol for pricing.get_products (moto has no Pricing API).

Each client finds its server through the standard per-service endpoint variables
(``AWS_ENDPOINT_URL_EC2``, ``AWS_ENDPOINT_URL_PRICING``), as a user's setup would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from optimizer.catalog import load_catalog, refresh_catalog
from tests.integration._moto import dummy_aws_env, moto_url, post  # noqa: F401

#: The stub's on-demand prices (USD per hour) by instance type; others get no offer.
PRICES = {"p4d.24xlarge": 19.5, "g5.xlarge": 0.9}


def _price_item(instance_type: str, usd: float) -> str:
    # The shape of one PriceList entry (a JSON document in a string), trimmed to what the
    # reader uses plus enough context to look real.
    return json.dumps(
        {
            "product": {
                "productFamily": "Compute Instance",
                "attributes": {"instanceType": instance_type, "operatingSystem": "Linux"},
                "sku": f"SKU{instance_type}",
            },
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {
                    f"SKU{instance_type}.JRTCKXETXF": {
                        "priceDimensions": {
                            f"SKU{instance_type}.JRTCKXETXF.6YS6EN2CT7": {
                                "unit": "Hrs",
                                "pricePerUnit": {"USD": f"{usd:.10f}"},
                            }
                        },
                        "sku": f"SKU{instance_type}",
                    }
                }
            },
            "version": "20250301000000",
        }
    )


class PricingStub:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"target": self.headers.get("X-Amz-Target"), "body": body})
                filters = {f["Field"]: f["Value"] for f in body.get("Filters", [])}
                itype = filters.get("instanceType", "")
                items = [_price_item(itype, PRICES[itype])] if itype in PRICES else []
                data = json.dumps({"FormatVersion": "aws_v1", "PriceList": items}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PricingStub]:  # noqa: F811
    post(moto_url, "/moto-api/reset", {})
    dummy_aws_env(monkeypatch, None)
    stub = PricingStub()
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", stub.url)
    try:
        yield stub
    finally:
        stub.close()


def test_refresh_reads_specs_from_ec2_and_prices_from_pricing(servers: PricingStub) -> None:
    base = load_catalog()
    names = ["p4d.24xlarge", "g5.xlarge", "m6i.large"]
    fresh = refresh_catalog(base, instance_types=names, as_of=date(2025, 3, 1))
    # Specs are what the EC2 API (moto's instance-type data) says.
    ec2 = boto3.client("ec2").describe_instance_types(InstanceTypes=names)["InstanceTypes"]
    specs = {d["InstanceType"]: d for d in ec2}
    for name in names:
        it = fresh.get(name)
        assert it.vcpu == specs[name]["VCpuInfo"]["DefaultVCpus"]
        assert it.memory_gib == specs[name]["MemoryInfo"]["SizeInMiB"] / 1024
    p4d = fresh.get("p4d.24xlarge")
    assert (p4d.gpus, p4d.gpu_model, p4d.mig_capable) == (8, "A100-40GB", True)
    assert fresh.get("m6i.large").gpus == 0
    # Prices come from the Price List answers; a type without an offer keeps its old price.
    assert p4d.on_demand_usd_per_hour == pytest.approx(19.5)
    assert fresh.get("g5.xlarge").on_demand_usd_per_hour == pytest.approx(0.9)
    assert (
        fresh.get("m6i.large").on_demand_usd_per_hour
        == base.get("m6i.large").on_demand_usd_per_hour
    )
    # Spot discounts are kept; the rest of the base catalog is carried over unchanged.
    assert p4d.spot_discount == base.get("p4d.24xlarge").spot_discount
    assert len(fresh) == len(base) and fresh.get("c6i.large") == base.get("c6i.large")
    assert (fresh.as_of, fresh.version) == ("2025-03-01", "2025.03.01-aws")
    # One Price List query per type, filtered the way the Pricing API expects.
    assert len(servers.requests) == 3
    assert {r["target"] for r in servers.requests} == {"AWSPriceListService.GetProducts"}
    filters = {f["Field"]: f["Value"] for f in servers.requests[0]["body"]["Filters"]}
    assert filters["location"] == "US East (N. Virginia)" and filters["operatingSystem"] == "Linux"
    assert servers.requests[0]["body"]["ServiceCode"] == "AmazonEC2"


def test_refresh_of_an_unknown_region_is_refused(servers: PricingStub) -> None:
    from features.exceptions import ConfigError

    with pytest.raises(ConfigError, match="parameter region"):
        refresh_catalog(region="mars-1")
    assert servers.requests == []
