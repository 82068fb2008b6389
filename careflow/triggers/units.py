"""UCUM unit conversion for threshold rules: only what is safe to convert.

A programme threshold in kg must fire for a weight recorded in g or lb, but mmol/mol and % (HbA1c)
measure on different scales that no factor converts: a rule and a measurement in units that do not
convert simply do not match (no guessing).
"""

from __future__ import annotations

# unit -> (dimension, factor to the dimension's base unit)
_FACTORS: dict[str, tuple[str, float]] = {
    "kg": ("mass", 1000.0),
    "g": ("mass", 1.0),
    "mg": ("mass", 0.001),
    "[lb_av]": ("mass", 453.59237),
    "L": ("volume", 1.0),
    "l": ("volume", 1.0),
    "mL": ("volume", 0.001),
    "ml": ("volume", 0.001),
    "m": ("length", 1.0),
    "cm": ("length", 0.01),
    "mm": ("length", 0.001),
    # eGFR: UCUM writes mL/min/{1.73_m2}; laboratories also send these spellings of the same unit
    "mL/min/{1.73_m2}": ("egfr", 1.0),
    "mL/min/{1.73m2}": ("egfr", 1.0),
    "mL/min/1.73m2": ("egfr", 1.0),
    "ml/min/1.73m2": ("egfr", 1.0),
    "mL/min/1.73 m2": ("egfr", 1.0),
}


def convert(value: float, from_unit: str | None, to_unit: str) -> float | None:
    """``value`` in ``from_unit`` expressed in ``to_unit``; None when the units do not convert."""
    if from_unit is None:
        return None
    if from_unit == to_unit:
        return value
    a, b = _FACTORS.get(from_unit), _FACTORS.get(to_unit)
    if a is None or b is None or a[0] != b[0]:
        return None
    return value * a[1] / b[1]
