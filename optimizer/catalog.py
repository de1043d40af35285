"""AWS instance catalog: capacity, GPUs, MIG capability and prices, versioned on disk.

The packaged file ``optimizer/data/aws_instances.json`` carries its version, the date
its prices were read, and its sources (AWS pricing and instance-type pages). It can be
refreshed from the AWS APIs with :func:`refresh_catalog` (``ec2.describe_instance_types``
for capacity, ``pricing.get_products`` for on-demand prices). ``boto3`` is optional and
imported only there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.exceptions import ConfigError
from optimizer.mig import is_mig_capable

PurchaseOption = Literal["on_demand", "spot"]

#: Pricing API location names of the regions we know.
REGION_LOCATIONS: dict[str, str] = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-central-1": "EU (Frankfurt)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
}

#: ec2 GPU names (DescribeInstanceTypes ``GpuInfo``) to catalog models, by memory (GiB).
_GPU_NAMES: dict[tuple[str, int], str] = {
    ("A100", 40): "A100-40GB",
    ("A100", 80): "A100-80GB",
    ("H100", 80): "H100-80GB",
    ("H200", 141): "H200-141GB",
    ("H200", 140): "H200-141GB",
}


@dataclass(frozen=True)
class InstanceType:
    """One EC2 instance type.

    Attributes
    ----------
    name : str
        EC2 API name, e.g. ``"p5.48xlarge"``.
    family : str
        Family, e.g. ``"p5"``.
    vcpu : int
        vCPUs.
    memory_gib : float
        Memory (GiB).
    gpus : int
        GPUs (0 for CPU types).
    gpu_model : str
        GPU model with memory where it matters (``"A100-40GB"``, ``"L4"``), "" for none.
    gpu_memory_gib : float
        Memory per GPU (GiB).
    mig_capable : bool
        Whether the GPUs support MIG.
    on_demand_usd_per_hour : float
        On-demand list price (USD/hour) in the catalog's region.
    spot_discount : float
        Typical Spot discount off on-demand, in [0, 1) (0.6 = Spot costs 40 %).
    note : str
        Caveat about the entry (e.g. an estimated price), "" if none.
    """

    name: str
    family: str
    vcpu: int
    memory_gib: float
    gpus: int = 0
    gpu_model: str = ""
    gpu_memory_gib: float = 0.0
    mig_capable: bool = False
    on_demand_usd_per_hour: float = 0.0
    spot_discount: float = 0.0
    note: str = ""

    @property
    def spot_usd_per_hour(self) -> float:
        """Typical Spot price (USD/hour)."""
        return self.on_demand_usd_per_hour * (1.0 - self.spot_discount)

    def price(self, option: PurchaseOption = "on_demand") -> float:
        """Hourly price for a purchase option (``on_demand`` or ``spot``)."""
        if option == "on_demand":
            return self.on_demand_usd_per_hour
        if option == "spot":
            return self.spot_usd_per_hour
        raise ConfigError(f"parameter option must be on_demand or spot, got {option!r}")

    @property
    def is_gpu(self) -> bool:
        """Whether the type has GPUs."""
        return self.gpus > 0


@dataclass(frozen=True)
class UnitPrices:
    """Hourly price of one unit of each resource, derived from the catalog.

    Attributes
    ----------
    vcpu : float
        USD per vCPU-hour.
    memory_gib : float
        USD per GiB-hour.
    gpu : mapping of str to float
        USD per GPU-hour by GPU model (instance price less its CPU and memory share).
    """

    vcpu: float
    memory_gib: float
    gpu: Mapping[str, float]

    def gpu_price(self, model: str) -> float:
        """Price of one GPU of ``model`` (the median over models if unknown)."""
        if model in self.gpu:
            return float(self.gpu[model])
        if not self.gpu:
            return 0.0
        return float(np.median(list(self.gpu.values())))


@dataclass(frozen=True)
class Catalog:
    """A versioned set of instance types with prices for one region.

    Attributes
    ----------
    version : str
    as_of : str
        ISO date the prices were read.
    region : str
    currency : str
    source : mapping
        Where specs, prices and spot discounts come from.
    instances : mapping of str to InstanceType
    """

    version: str
    as_of: str
    region: str
    currency: str
    source: Mapping[str, str]
    instances: Mapping[str, InstanceType] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.instances)

    def __contains__(self, name: object) -> bool:
        return name in self.instances

    def get(self, name: str) -> InstanceType:
        """Look up one instance type.

        Raises
        ------
        ConfigError
            When the type is not in the catalog.
        """
        try:
            return self.instances[name]
        except KeyError:
            raise ConfigError(
                f"parameter instance_type must be in the catalog ({len(self)} types, "
                f"version {self.version}), got {name!r}"
            ) from None

    def select(
        self,
        *,
        families: Iterable[str] | None = None,
        gpu: bool | None = None,
        gpu_models: Iterable[str] | None = None,
    ) -> Catalog:
        """A catalog restricted to some families, GPU/CPU types or GPU models."""
        fams = set(families) if families is not None else None
        models = set(gpu_models) if gpu_models is not None else None
        keep = {
            n: it
            for n, it in self.instances.items()
            if (fams is None or it.family in fams)
            and (gpu is None or it.is_gpu == gpu)
            and (models is None or it.gpu_model in models)
        }
        return replace(self, instances=keep)

    def to_frame(self) -> pd.DataFrame:
        """One row per instance type, with a ``spot_usd_per_hour`` column."""
        rows = [{**asdict(it), "spot_usd_per_hour": it.spot_usd_per_hour} for it in self]
        return pd.DataFrame(rows)

    def __iter__(self) -> Any:
        return iter(self.instances[n] for n in sorted(self.instances))

    def unit_prices(self) -> UnitPrices:
        """Per-vCPU, per-GiB and per-GPU hourly prices.

        vCPU and memory prices come from a least-squares fit
        ``price = a * vcpu + b * memory`` over CPU-only types; a GPU's price is the median
        over the types that carry it of ``(price - a * vcpu - b * memory) / gpus``.
        """
        cpu = [it for it in self if not it.is_gpu and it.on_demand_usd_per_hour > 0]
        if len(cpu) >= 2:
            x = np.array([[it.vcpu, it.memory_gib] for it in cpu], dtype=float)
            y = np.array([it.on_demand_usd_per_hour for it in cpu])
            coef, *_ = np.linalg.lstsq(x, y, rcond=None)
            a, b = (max(float(c), 0.0) for c in coef)
        else:
            a, b = 0.04, 0.005
        by_model: dict[str, list[float]] = {}
        for it in self:
            if it.is_gpu and it.on_demand_usd_per_hour > 0:
                rest = it.on_demand_usd_per_hour - a * it.vcpu - b * it.memory_gib
                share = max(rest, 0.5 * it.on_demand_usd_per_hour) / it.gpus
                by_model.setdefault(it.gpu_model, []).append(share)
        return UnitPrices(a, b, {m: float(np.median(v)) for m, v in sorted(by_model.items())})

    def to_dict(self) -> dict[str, Any]:
        """The JSON document form (as stored on disk)."""
        return {
            "version": self.version,
            "as_of": self.as_of,
            "region": self.region,
            "currency": self.currency,
            "source": dict(self.source),
            "instances": [
                {k: v for k, v in asdict(it).items() if not (k == "note" and not v)} for it in self
            ],
        }


DEFAULT_CATALOG = "aws_instances.json"


def _instance_from_dict(d: Mapping[str, Any], where: str) -> InstanceType:
    try:
        it = InstanceType(
            name=str(d["name"]),
            family=str(d.get("family") or str(d["name"]).split(".")[0]),
            vcpu=int(d["vcpu"]),
            memory_gib=float(d["memory_gib"]),
            gpus=int(d.get("gpus", 0)),
            gpu_model=str(d.get("gpu_model", "")),
            gpu_memory_gib=float(d.get("gpu_memory_gib", 0.0)),
            mig_capable=bool(d.get("mig_capable", is_mig_capable(str(d.get("gpu_model", ""))))),
            on_demand_usd_per_hour=float(d["on_demand_usd_per_hour"]),
            spot_discount=float(d.get("spot_discount", 0.0)),
            note=str(d.get("note", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: invalid instance entry {d!r}: {exc}") from None
    price = it.on_demand_usd_per_hour
    if not math.isfinite(price) or price < 0:
        raise ConfigError(f"{where}: {it.name} price must be finite and >= 0, got {price!r}")
    if not 0 <= it.spot_discount < 1:
        raise ConfigError(
            f"{where}: {it.name} spot_discount must be in [0, 1), got {it.spot_discount!r}"
        )
    return it


def catalog_from_dict(doc: Mapping[str, Any], where: str = "catalog") -> Catalog:
    """Build a :class:`Catalog` from its JSON document form (validates every entry)."""
    try:
        entries = doc["instances"]
        version = str(doc["version"])
    except (KeyError, TypeError):
        raise ConfigError(f"{where}: catalog must have 'version' and 'instances'") from None
    instances: dict[str, InstanceType] = {}
    for d in entries:
        it = _instance_from_dict(d, where)
        if it.name in instances:
            raise ConfigError(f"{where}: instance type {it.name!r} listed twice")
        instances[it.name] = it
    return Catalog(
        version=version,
        as_of=str(doc.get("as_of", "")),
        region=str(doc.get("region", "us-east-1")),
        currency=str(doc.get("currency", "USD")),
        source=dict(doc.get("source", {})),
        instances=instances,
    )


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load a catalog file (default: the packaged ``aws_instances.json``)."""
    if path is None:
        text = resources.files("optimizer.data").joinpath(DEFAULT_CATALOG).read_text()
        where = f"optimizer/data/{DEFAULT_CATALOG}"
    else:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read catalog {p}: {exc}") from None
        where = str(p)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON: {exc}") from None
    return catalog_from_dict(doc, where)


def save_catalog(catalog: Catalog, path: str | Path) -> Path:
    """Write a catalog as JSON (the format :func:`load_catalog` reads)."""
    p = Path(path)
    p.write_text(json.dumps(catalog.to_dict(), indent=1) + "\n")
    return p


def _gpu_model(info: Mapping[str, Any]) -> tuple[int, str, float]:
    gpus = info.get("Gpus") or []
    if not gpus:
        return 0, "", 0.0
    g = gpus[0]
    count = int(sum(int(x.get("Count", 0)) for x in gpus))
    mem = float(g.get("MemoryInfo", {}).get("SizeInMiB", 0)) / 1024.0
    name = str(g.get("Name", ""))
    model = _GPU_NAMES.get((name, round(mem)), name)
    return count, model, round(mem, 1)


def _on_demand_price(price_item: Mapping[str, Any]) -> float | None:
    for term in price_item.get("terms", {}).get("OnDemand", {}).values():
        for dim in term.get("priceDimensions", {}).values():
            usd = dim.get("pricePerUnit", {}).get("USD")
            if usd is not None and float(usd) > 0:
                return float(usd)
    return None


def refresh_catalog(
    base: Catalog | None = None,
    *,
    region: str | None = None,
    instance_types: Iterable[str] | None = None,
    session: Any = None,
    as_of: date | None = None,
) -> Catalog:
    """Re-read capacity and on-demand prices from the AWS APIs.

    Parameters
    ----------
    base : Catalog, optional
        The catalog to refresh (default: the packaged one). Spot discounts and notes are
        kept from it.
    region : str, optional
        Region to price (default: the base catalog's).
    instance_types : iterable of str, optional
        Types to refresh (default: every type of ``base``).
    session : boto3.Session, optional
        Session to use (default: a new one with the ambient credentials).
    as_of : datetime.date, optional
        Date to stamp (default: today).

    Returns
    -------
    Catalog
        A new catalog; ``base`` is left unchanged.

    Raises
    ------
    ConfigError
        When ``boto3`` is not installed or the region is unknown.
    """
    try:
        import boto3
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "refresh_catalog needs boto3: pip install boto3 (it is imported lazily)"
        ) from None
    base = base if base is not None else load_catalog()
    region = region or base.region
    if region not in REGION_LOCATIONS:
        raise ConfigError(
            f"parameter region must be one of {sorted(REGION_LOCATIONS)}, got {region!r}"
        )
    names = sorted(instance_types) if instance_types is not None else sorted(base.instances)
    sess = session if session is not None else boto3.session.Session()
    ec2 = sess.client("ec2", region_name=region)
    # The Price List API is served from us-east-1 (and a few others) for every region.
    pricing = sess.client("pricing", region_name="us-east-1")
    specs: dict[str, dict[str, Any]] = {}
    for start in range(0, len(names), 100):
        resp = ec2.describe_instance_types(InstanceTypes=names[start : start + 100])
        for d in resp.get("InstanceTypes", []):
            specs[d["InstanceType"]] = d
    out: dict[str, InstanceType] = dict(base.instances) if instance_types is not None else {}
    for name in names:
        d = specs.get(name)
        old = base.instances.get(name)
        if d is None:
            if old is not None:
                out[name] = old
            continue
        gpus, model, gmem = _gpu_model(d.get("GpuInfo", {}))
        price = None
        resp = pricing.get_products(
            ServiceCode="AmazonEC2",
            Filters=[
                {"Type": "TERM_MATCH", "Field": "instanceType", "Value": name},
                {"Type": "TERM_MATCH", "Field": "location", "Value": REGION_LOCATIONS[region]},
                {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
                {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
                {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
                {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
            ],
            MaxResults=10,
        )
        for raw in resp.get("PriceList", []):
            item = json.loads(raw) if isinstance(raw, str) else raw
            price = _on_demand_price(item)
            if price is not None:
                break
        if price is None:
            price = old.on_demand_usd_per_hour if old is not None else 0.0
        out[name] = InstanceType(
            name=name,
            family=name.split(".")[0],
            vcpu=int(d.get("VCpuInfo", {}).get("DefaultVCpus", old.vcpu if old else 0)),
            memory_gib=float(d.get("MemoryInfo", {}).get("SizeInMiB", 0)) / 1024.0,
            gpus=gpus,
            gpu_model=model or (old.gpu_model if old else ""),
            gpu_memory_gib=gmem,
            mig_capable=is_mig_capable(model),
            on_demand_usd_per_hour=price,
            spot_discount=old.spot_discount if old is not None else 0.0,
            note="",
        )
    stamp = (as_of or date.today()).isoformat()
    return Catalog(
        version=f"{stamp.replace('-', '.')}-aws",
        as_of=stamp,
        region=region,
        currency="USD",
        source={
            **dict(base.source),
            "on_demand": f"pricing.get_products (AmazonEC2, {REGION_LOCATIONS[region]}, Linux)",
            "specs": "ec2.describe_instance_types",
        },
        instances=out,
    )
