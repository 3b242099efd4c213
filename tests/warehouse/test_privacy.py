"""The personal-data guard used before anything is logged to MLflow."""

from __future__ import annotations

import pandas as pd
import pytest
from nextbest.warehouse.privacy import PersonalDataError, assert_no_personal_data, personal_columns_in


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (pd.DataFrame({"age": [30], "email": ["a@b.nl"]}), "personal column(s) email"),
        (pd.DataFrame({"Phone": ["+31612345678"]}), "personal column(s) Phone"),
        (["recency_days", "customers.postcode"], "personal column(s) customers.postcode"),
        ({"first_name": "x", "lr": 0.1}, "personal column(s) first_name"),
        (pd.DataFrame({"contact": ["x", "ann@example.com"]}), "column(s) contact hold e-mail addresses"),
        (pd.DataFrame({"c": pd.Categorical(["bob@example.org"])}), "column(s) c hold e-mail addresses"),
    ],
)
def test_personal_data_is_refused(data, fragment) -> None:
    with pytest.raises(PersonalDataError) as err:
        assert_no_personal_data(data, what="training frame")
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "data",
    [
        pd.DataFrame({"customer_id": [1, 2], "age": [30.0, None], "region": ["north", "south"]}),
        ["recency_days", "consent_email", "valid_email"],
        {"learning_rate": 0.05},
        pd.DataFrame({"note": ["at 5 @ home", None]}),
    ],
)
def test_clean_data_passes(data) -> None:
    assert_no_personal_data(data)


def test_personal_columns_in_is_case_insensitive() -> None:
    assert personal_columns_in(["EMAIL", "street_address", "age"]) == ["EMAIL", "street_address"]
