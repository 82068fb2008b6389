"""The map of the demo region: Zorgzaam Leuven's 8 neighbourhoods (buurten) and 24 districts (wijken).

The seeds describe Leuven split into 8 "natural" neighbourhoods of about 12,500 people and 24
districts of about 4,000. The real boundaries are not public in the seeds, so these are plausible
groupings of real Leuven place names (Kop van Kessel-Lo, Casablanca and Wilsele-Dorp appear in the
seeds themselves). Streets are real Leuven-area street names, used only to make addresses readable.
"""

from __future__ import annotations

from dataclasses import dataclass

CITY = "Leuven"
COUNTRY = "BE"
REGION_NAME = "Zorgzaam Leuven"


@dataclass(frozen=True, slots=True)
class District:
    """A wijk: the unit home nurses and addresses are organised by."""

    slug: str
    name: str
    postal_code: str
    streets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NeighbourhoodPlan:
    """A buurt as drawn on the map, before it is given inhabitants and a team."""

    slug: str
    name: str
    districts: tuple[District, ...]


NEIGHBOURHOODS: tuple[NeighbourhoodPlan, ...] = (
    NeighbourhoodPlan(
        "binnenstad",
        "Binnenstad",
        (
            District("sint-jacob", "Sint-Jacob", "3000", ("Naamsestraat", "Sint-Jacobsplein", "Ravenstraat", "Brusselsestraat")),
            District("sint-kwinten", "Sint-Kwinten", "3000", ("Tiensestraat", "Sint-Kwintensberg", "Minderbroedersstraat", "Schapenstraat")),
            District("heilige-geest", "Heilige Geest", "3000", ("Mechelsestraat", "Parijsstraat", "Vismarkt", "Tessenstraat")),
        ),
    ),
    NeighbourhoodPlan(
        "heilig-hart",
        "Heilig Hart",
        (
            District("heilig-hart", "Heilig Hart", "3000", ("Tervuursesteenweg", "Dekenstraat", "Vlamingenstraat", "Kapucijnenvoer")),
            District("tervuursepoort", "Tervuursepoort", "3000", ("Tervuursevest", "Kapeldreef", "Tiensevest", "Redingenstraat")),
            District("sint-maartensdal", "Sint-Maartensdal", "3000", ("Diestsevest", "Joanna-Maria Artoisplein", "Ridderstraat", "Weggevoerdenstraat")),
        ),
    ),
    NeighbourhoodPlan(
        "vaartkom-wijgmaal",
        "Vaartkom-Wijgmaal",
        (
            District("vaartkom", "Vaartkom", "3000", ("Vaartkom", "Sluisstraat", "Balk van Beveren", "Engels Plein")),
            District("matadi", "Matadi", "3000", ("Aarschotsesteenweg", "Vuurkruisenlaan", "Lemmensberg", "Mechelsevest")),
            District("wijgmaal", "Wijgmaal", "3018", ("Wijgmaalsesteenweg", "Remy Ladeuzelaan", "Rotselaarsestraat", "Kortenbergstraat")),
        ),
    ),
    NeighbourhoodPlan(
        "kessel-lo-centrum",
        "Kessel-Lo Centrum",
        (
            District("kop-van-kessel-lo", "Kop van Kessel-Lo", "3010", ("Diestsesteenweg", "Martelarenlaan", "Jozef Vandenbemptlaan", "Stationsberg")),
            District("casablanca", "Casablanca", "3010", ("Tiensesteenweg", "Casablancastraat", "Koning Albertlaan", "Gemeentestraat")),
            District("tivoli", "Tivoli", "3010", ("Tivolistraat", "Heidebergstraat", "Lindenhofstraat", "Platte-Lostraat")),
        ),
    ),
    NeighbourhoodPlan(
        "kessel-lo-oost",
        "Kessel-Lo Oost",
        (
            District("blauwput", "Blauwput", "3010", ("Blauwputstraat", "Holsbeeksesteenweg", "Rijschoolstraat", "Kareelstraat")),
            District("vlierbeek", "Vlierbeek", "3010", ("Vlierbeekberg", "Abdijstraat", "Oude Baan", "Vlierbeeklaan")),
            District("boudewijnlaan", "Boudewijnlaan", "3010", ("Koning Boudewijnlaan", "Leuvensesteenweg", "Ambachtenlaan", "Lostraat")),
        ),
    ),
    NeighbourhoodPlan(
        "heverlee-centrum",
        "Heverlee Centrum",
        (
            District("heverlee-dorp", "Heverlee-Dorp", "3001", ("Naamsesteenweg", "Sint-Lambertusstraat", "Waversebaan", "Kapeldreef")),
            District("arenberg", "Arenberg", "3001", ("Kardinaal Mercierlaan", "Celestijnenlaan", "Kasteelpark Arenberg", "Geldenaaksebaan")),
            District("naamsepoort", "Naamsepoort", "3001", ("Naamsevest", "Parkstraat", "Bierbeekstraat", "Hertogstraat")),
        ),
    ),
    NeighbourhoodPlan(
        "heverlee-zuid",
        "Heverlee Zuid",
        (
            District("egenhoven", "Egenhoven", "3001", ("Egenhovenweg", "Bertemsesteenweg", "Abdij van Park", "Hoogstraat")),
            District("ter-bank", "Ter Bank", "3001", ("Ter Bankstraat", "Tervuursesteenweg", "Ortolanenlaan", "Sint-Jansbergsesteenweg")),
            District("waversebaan", "Waversebaan", "3001", ("Waversebaan", "Groeneweg", "Bremstraat", "Prosper Poullet-laan")),
        ),
    ),
    NeighbourhoodPlan(
        "wilsele",
        "Wilsele",
        (
            District("wilsele-dorp", "Wilsele-Dorp", "3012", ("Wilselsesteenweg", "Kareelveld", "Sint-Martinusstraat", "Aarschotsesteenweg")),
            District("kareelveld", "Kareelveld", "3012", ("Kareelveldlaan", "Kolonel Begaultlaan", "Tentstraat", "Rotselaarsesteenweg")),
            District("wilsele-putkapel", "Wilsele-Putkapel", "3012", ("Putkapelstraat", "Wilsele Dorp", "Kampenhoutsebaan", "Bergstraat")),
        ),
    ),
)
