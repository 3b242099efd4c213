"""Declared attributes in features.yaml: validated once, at load, with the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextbest.config import load_config
from nextbest.errors import ConfigError
from nextbest.workspace import Workspace


def _declare(workspace: Workspace, attributes: str, *, segment_rule: str | None = None) -> Path:
    features = workspace.config_dir / "features.yaml"
    features.write_text(features.read_text() + "\nattributes:\n" + attributes)
    if segment_rule is not None:
        policy = workspace.config_dir / "policy.yaml"
        policy.write_text(policy.read_text() + f'  - {{name: attr_segment, rule: "{segment_rule}"}}\n')
    return workspace.config_dir


def test_attributes_of_each_type_load(workspace: Workspace) -> None:
    config = load_config(_declare(workspace, """
  - {name: loyalty_tier, type: category}
  - {name: crm_score, type: number, description: "CRM score"}
  - {name: is_vip, type: boolean}
  - {name: contract_start, type: date}
  - {name: partner_birth_date, type: date, personal: true}
""", segment_rule="loyalty_tier == 'gold' and crm_score > 10 and is_vip and contract_start >= 30"))
    assert [(a.name, a.type, a.personal) for a in config.features.attributes] == [
        ("loyalty_tier", "category", False), ("crm_score", "number", False), ("is_vip", "boolean", False),
        ("contract_start", "date", False), ("partner_birth_date", "date", True),
    ]
    with pytest.raises(Exception):  # frozen, like the rest of the config
        config.features.attributes[0].name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("attributes", "rule", "message"),
    [
        ("  - {name: tier, type: category}\n  - {name: tier, type: number}\n", None,
         "duplicate attribute name(s) ['tier']; declare each attribute once"),
        ("  - {name: gender, type: category}\n", None,
         "attribute(s) ['gender'] are built-in customers columns"),
        ("  - {name: engagement_score, type: number}\n", None,
         "features.attributes: ['engagement_score'] already name built-in features"),
        ("  - {name: age, type: number}\n", None, "['age'] already name built-in features"),
        ("  - {name: label, type: boolean}\n", None, "attribute name(s) ['label'] are reserved by nextbest"),
        ("  - {name: order, type: number}\n", None, "attribute name 'order' is an SQL keyword"),
        ("  - {name: tier, type: text}\n", None,
         "features.attributes.0.type: Input should be 'number', 'category', 'boolean' or 'date'"),
        ("  - {name: tier}\n", None, "features.attributes.0.type: Field required"),
        ("  - {name: Loyalty Tier, type: category}\n", None, "features.attributes.0.name: String should match pattern"),
        ("  - {name: tier, type: category, personnal: true}\n", None,
         "features.attributes.0.personnal: Extra inputs are not permitted"),
        ("  - {name: tier, type: category}\n", "tierr == 'gold'", "unknown feature 'tierr'; did you mean 'tier'?"),
        ("  - {name: nickname, type: category, personal: true}\n", "nickname == 'x'",
         "'nickname' is a personal attribute (features.yaml `personal: true`); rules never read personal data"),
    ],
)
def test_bad_declarations_are_refused_naming_the_field(
    attributes: str, rule: str | None, message: str, workspace: Workspace
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_declare(workspace, attributes, segment_rule=rule))
    assert message in str(err.value)


def _policy(workspace: Workspace, section: str, values: dict[str, object]) -> Path:
    import yaml

    path = workspace.config_dir / "policy.yaml"
    policy = yaml.safe_load(path.read_text())
    policy[section] = {**(policy.get(section) or {}), **values}
    path.write_text(yaml.safe_dump(policy))
    return workspace.config_dir


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("universal_control", {"share": 1.0}, "policy.universal_control.share: Input should be less than 1"),
        ("universal_control", {"share": -0.1}, "policy.universal_control.share: Input should be greater than or equal to 0"),
        ("universal_control", {"share": "some"}, "policy.universal_control.share: Input should be a valid number"),
        ("universal_control", {"salt": ""}, "policy.universal_control.salt: String should have at least 1 character"),
        ("universal_control", {"name": "Hold Out"}, "policy.universal_control.name: String should match pattern"),
        ("universal_control", {"name": "control"},
         "universal_control.name 'control' is also an arm of experiment 'nba-2024'; rename the arm or the universal"),
        ("universal_control", {"shares": 0.1}, "policy.universal_control.shares: Extra inputs are not permitted"),
        ("exploration", {"contact_epsilon": 0.6}, "policy.exploration.contact_epsilon: Input should be less than or equal to 0.5"),
        ("exploration", {"contact_epsilon": -0.01},
         "policy.exploration.contact_epsilon: Input should be greater than or equal to 0"),
    ],
)
def test_bad_learning_settings_are_refused_naming_the_field(
    section: str, values: dict[str, object], message: str, workspace: Workspace
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_policy(workspace, section, values))
    assert message in str(err.value)


def test_universal_control_defaults_and_can_be_switched_off(workspace: Workspace) -> None:
    config = load_config(workspace.config_dir)
    uc = config.policy.universal_control
    assert (uc.share, uc.name) == (0.05, "universal_control")
    assert load_config(_policy(workspace, "universal_control", {"share": 0})).policy.universal_control.share == 0
