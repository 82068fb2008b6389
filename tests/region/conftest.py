"""A 10,000-inhabitant demo region, generated once per session: the prevalence and count tests
read the same records instead of regenerating them."""

from __future__ import annotations

import pytest

from careflow.region import PatientRecord, Region, generate_region


@pytest.fixture(scope="session")
def region_10k() -> Region:
    return generate_region(10_000, seed=1)


@pytest.fixture(scope="session")
def records_10k(region_10k: Region) -> list[PatientRecord]:
    return list(region_10k.patients)
