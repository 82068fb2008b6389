"""Demo and import data for careflow, as plain FHIR R4 resource dicts (no store, no web, no engine).

- ``generate_region``: the deterministic synthetic Zorgzaam Leuven region (teams and inhabitants).
- ``read_synthea``: resources from Synthea transaction bundles with references made storable.
"""

from careflow.region.generate import (
    DEFAULT_REFERENCE_DATE,
    Neighbourhood,
    PatientRecord,
    Region,
    RegionError,
    generate_region,
)
from careflow.region.practitioners import ROLES
from careflow.region.synthea import SERVED_TYPES, BundleImportError, ImportStats, read_synthea

__all__ = [
    "DEFAULT_REFERENCE_DATE",
    "ROLES",
    "SERVED_TYPES",
    "BundleImportError",
    "ImportStats",
    "Neighbourhood",
    "PatientRecord",
    "Region",
    "RegionError",
    "generate_region",
    "read_synthea",
]
