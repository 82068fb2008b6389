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
    # mass concentrations that labs send in either spelling (ferritin µg/L = ng/mL, NT-proBNP pg/mL = ng/L)
    "ug/L": ("mass/volume", 1e-6),
    "ng/mL": ("mass/volume", 1e-6),
    "ng/L": ("mass/volume", 1e-9),
    "pg/mL": ("mass/volume", 1e-9),
    "mg/dL": ("mass/volume", 1e-2),
    "g/L": ("mass/volume", 1.0),
    "mg/L": ("mass/volume", 1e-3),
    # protein excreted per day
    "g/(24.h)": ("mass/day", 1.0),
    "mg/(24.h)": ("mass/day", 1e-3),
    "g/d": ("mass/day", 1.0),
    "mg/d": ("mass/day", 1e-3),
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
