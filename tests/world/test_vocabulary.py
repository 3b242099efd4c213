"""The interaction vocabulary."""

from __future__ import annotations

import re

from nextbest.config import load_config
from nextbest.world.vocabulary import FAMILIES, Vocabulary
from nextbest.world.world import world_categories

TYPE_PATTERN = re.compile(r"^(web|app|email|store|service|social)\.[a-z_]+(\.[a-z_]+)*$")


def test_default_catalogue_gives_over_100_well_formed_unique_types() -> None:
    vocab = Vocabulary.build(world_categories(load_config()))
    assert len(vocab.types) >= 100
    assert len(set(vocab.types)) == len(vocab.types)
    assert all(TYPE_PATTERN.match(t) for t in vocab.types), [t for t in vocab.types if not TYPE_PATTERN.match(t)]
    assert {t.split(".")[0] for t in vocab.types} == set(FAMILIES)


def test_contract_examples_are_in_the_vocabulary() -> None:
    vocab = Vocabulary.build(world_categories(load_config()))
    for t in ("web.view.category.shoes", "web.search", "app.open", "email.open", "email.click", "store.visit",
              "service.call", "service.complaint", "social.review", "email.newsletter_signup"):
        vocab.index(t)


def test_table_maps_category_actions_to_their_category() -> None:
    vocab = Vocabulary.build(("shoes", "garden"))
    web = FAMILIES.index("web")
    assert vocab.types[vocab.table[web, 1, 1]] == "web.view.category.garden"
    assert vocab.types[vocab.table[web, 0, 1]] == "web.view.home"
