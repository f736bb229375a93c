"""Product dictionary and event groups from the shipped configuration."""

import pytest

from pv.errors import ConfigError
from pv.normalise import EventGroups, ProductDictionary, drug_key, normalise_pt

from .conftest import REPO

PRODUCTS = ProductDictionary.load(REPO / "config" / "products.yaml")
GROUPS = EventGroups.load(REPO / "config" / "event_groups.yaml")


@pytest.mark.parametrize(
    ("name", "product"),
    [
        ("YESCARTA (AXICABTAGENE CILOLEUCEL)", "axicabtagene ciloleucel"),
        ("Yescarta", "axicabtagene ciloleucel"),
        ("axi-cel", "axicabtagene ciloleucel"),
        ("AXICEL", "axicabtagene ciloleucel"),
        ("KTE-C19", "axicabtagene ciloleucel"),
        ("奕凯达", "axicabtagene ciloleucel"),
        ("KYMRIAH INJECTION", "tisagenlecleucel"),
        ("ctl019", "tisagenlecleucel"),
        ("Breyanzi.", "lisocabtagene maraleucel"),
        ("bb2121", "idecabtagene vicleucel"),
        ("CARVYKTI", "ciltacabtagene autoleucel"),
        ("LCAR-B38M", "ciltacabtagene autoleucel"),
        ("JNJ-68284528", "ciltacabtagene autoleucel"),
        ("relma-cel", "relmacabtagene autoleucel"),
        ("倍诺达", "relmacabtagene autoleucel"),
        ("Fucaso", "equecabtagene autoleucel"),
        ("CNCT19", "inaticabtagene autoleucel"),
        ("zevor-cel", "zevorcabtagene autoleucel"),
        ("Aucatzyl", "obecabtagene autoleucel"),
        ("Tecartus", "brexucabtagene autoleucel"),
        ("UNKNOWN (TISAGENLECLEUCEL)", "tisagenlecleucel"),
    ],
)
def test_spellings_map_to_one_product(name: str, product: str) -> None:
    assert PRODUCTS.match(name) == product


def test_every_domain_product_present() -> None:
    assert len(PRODUCTS.products) == 11


def test_unmapped_names_are_not_matched_and_keep_a_verbatim_key() -> None:
    assert PRODUCTS.match("ASPIRIN", "ACETYLSALICYLIC ACID") is None
    assert PRODUCTS.match("CELLCEPT") is None
    assert drug_key("Aspirin  (Bayer)") == "ASPIRIN"


def test_prod_ai_used_when_drugname_does_not_match() -> None:
    assert PRODUCTS.match("CAR-T CELLS", "TISAGENLECLEUCEL") == "tisagenlecleucel"


def test_pt_matching_is_case_insensitive_and_groups_nest() -> None:
    assert normalise_pt("CYTOKINE RELEASE  SYNDROME") == "cytokine release syndrome"
    assert GROUPS.groups_of("T-CELL LYMPHOMA") == ["malignancy_t_cell", "secondary_malignancy"]
    assert GROUPS.groups_of("Parkinsonism") == ["icans", "movement_nerve_toxicity"]
    assert GROUPS.groups["secondary_malignancy"] >= GROUPS.groups["malignancy_myeloid"]


def test_cyclic_or_unknown_includes_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="each other"):
        EventGroups.from_mapping({"a": {"includes": ["b"]}, "b": {"includes": ["a"]}})
    with pytest.raises(ConfigError, match="unknown group"):
        EventGroups.from_mapping({"a": {"includes": ["zz"]}})
