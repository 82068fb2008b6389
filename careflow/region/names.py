"""Names that sound like a Leuven waiting room: Flemish first names by generation, common Flemish
surnames, and a share of the names of Leuven's larger migrant communities.

Popular first names change with birth cohort, so an 85-year-old is a Maria or a Jozef and a child a
Lotte or a Noah; drawing by birth year keeps the demo from looking generated.
"""

from __future__ import annotations

import random

# (born before year, female names, male names)
_FIRST_NAMES: tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        1945,
        ("Maria", "Julia", "Paula", "Germaine", "Josée", "Simonne", "Godelieve", "Irma", "Elza", "Margriet", "Alice", "Bertha"),
        ("Jozef", "Frans", "Georges", "Jan", "Albert", "Leon", "Karel", "Marcel", "Gustaaf", "Emiel", "Hendrik", "Florent"),
    ),
    (
        1965,
        ("Maria", "Annie", "Rita", "Christiane", "Monique", "Lutgarde", "Hilde", "Marleen", "Gerda", "Lieve", "Rosa", "Mieke"),
        ("Jan", "Marc", "Luc", "Paul", "Jozef", "Willy", "Guido", "Dirk", "André", "Eddy", "Walter", "Roger"),
    ),
    (
        1985,
        ("Sofie", "Katrien", "Els", "Ann", "Veerle", "Kristel", "Inge", "Nathalie", "Sarah", "Tine", "Elke", "Caroline"),
        ("Peter", "Kristof", "Bart", "Tom", "Koen", "Wim", "Steven", "Tim", "Geert", "Nico", "Pieter", "Jeroen"),
    ),
    (
        2005,
        ("Laura", "Julie", "Lotte", "Charlotte", "Lisa", "Hannelore", "Emma", "Marie", "Lien", "Eline", "Fien", "Amber"),
        ("Thomas", "Robbe", "Jonas", "Arne", "Simon", "Wout", "Lukas", "Maarten", "Jens", "Sander", "Brecht", "Ruben"),
    ),
    (
        9999,
        ("Emma", "Olivia", "Louise", "Mila", "Ella", "Nora", "Lina", "Juliette", "Noor", "Fleur", "Lore", "Hanne"),
        ("Noah", "Arthur", "Louis", "Lucas", "Jules", "Finn", "Liam", "Mats", "Vic", "Lars", "Warre", "Stan"),
    ),
)

_MIGRANT_FIRST_NAMES: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("Fatima", "Aicha", "Samira", "Zeynep", "Elif", "Nadia", "Amina", "Yasmina", "Agnieszka", "Ana", "Mariam", "Salma"),
    ("Mohamed", "Ahmed", "Youssef", "Mustafa", "Mehmet", "Ayoub", "Hamza", "Bilal", "Piotr", "Andrei", "Omar", "Karim"),
)

SURNAMES: tuple[str, ...] = (
    "Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens", "Wouters", "De Smet",
    "Vermeulen", "Van den Broeck", "Hermans", "Aerts", "Michiels", "Pauwels", "Martens", "Vandenberghe", "Verstraeten",
    "Van Damme", "Vos", "Leemans", "Smets", "Cools", "Coppens", "Lambrechts", "Van de Velde", "Verhoeven", "De Clercq",
    "Thys", "Wuyts", "Segers", "Stevens", "Geerts", "Bogaerts", "Van Dyck", "Vandevelde", "Van Hoof", "Huybrechts",
    "Luyten", "Vanderstraeten", "Swinnen", "Van Roey", "Celis", "Jorissen", "Vanhoutte", "Bosmans", "Moens", "Verbeke",
    "Daems", "Van Gorp", "Hendrickx", "Vanmechelen", "Vranckx", "Meulemans", "Boeckx", "Vandenbosch", "Van Aken",
)
MIGRANT_SURNAMES: tuple[str, ...] = (
    "El Amrani", "Benali", "El Idrissi", "Bouzid", "Yilmaz", "Kaya", "Demir", "Nowak", "Kowalski", "Popescu",
    "Haddad", "Diallo", "Mbuyi", "Rossi", "Garcia",
)

MIGRANT_SHARE = 0.14  # roughly Leuven's share of residents of non-EU-15 origin, rounded down


def _pick(rng: random.Random, names: tuple[str, ...]) -> str:
    return names[int(rng.random() * len(names))]


def draw_name(rng: random.Random, gender: str, birth_year: int) -> tuple[str, str]:
    """(given name, family name) for someone of ``gender`` born in ``birth_year``."""
    female = gender == "female"
    if rng.random() < MIGRANT_SHARE:
        given = _pick(rng, _MIGRANT_FIRST_NAMES[0] if female else _MIGRANT_FIRST_NAMES[1])
        return given, _pick(rng, MIGRANT_SURNAMES)
    for before, women, men in _FIRST_NAMES:
        if birth_year < before:
            return _pick(rng, women if female else men), _pick(rng, SURNAMES)
    raise AssertionError("the last cohort is open-ended")  # pragma: no cover
