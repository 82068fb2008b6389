"""careflow: shared care plans on FHIR R4.

Importing the package turns off every telemetry switch of its dependencies (``careflow.privacy``),
before any of them is imported.
"""

from careflow.privacy import telemetry_off

telemetry_off()
