"""Quality indicators: declarative definitions (``measures/*.yaml``), their evaluation (set-wise in the
SQL store, a plain reference evaluator for the memory twin) and the FHIR Measure / MeasureReport."""
