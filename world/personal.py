"""Personal data, consent, contact validity and the seeded data defects.

Names come from small fixed lists and every e-mail address uses a reserved example
domain, so no real person is described. Validity is *consistent* with the contact
details: ``valid_email`` is true exactly when the e-mail is present and well formed
(:data:`EMAIL_PATTERN`), ``valid_phone`` likewise with :data:`PHONE_PATTERN`, and
``valid_address`` when a street address is present. Every defect the generator seeds
is recorded (kind, customer, detail) so a data-quality check can be held to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from nextbest.config import NextbestConfig
from nextbest.world.params import WorldParams
from nextbest.world.population import Population

#: A well-formed e-mail address (what ``valid_email`` checks).
EMAIL_PATTERN = r"^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"
#: A well-formed phone number: ``+`` and 11 digits, no spaces.
PHONE_PATTERN = r"^\+[0-9]{11}$"

DEFECT_KINDS: tuple[str, ...] = (
    "invalid_email", "invalid_phone", "duplicate_email", "duplicate_phone", "missing_consent_all", "unreachable", "params",
)

_FIRST = {
    0: ("Anna", "Emma", "Sophie", "Julia", "Lotte", "Mila", "Sara", "Eva", "Lisa", "Noor", "Fleur", "Iris", "Nina", "Laura", "Marie"),
    1: ("Lucas", "Daan", "Sem", "Finn", "Levi", "Milan", "Noah", "Thomas", "Jan", "Pieter", "Bram", "Max", "Tim", "Ruben", "Lars"),
    2: ("Alex", "Robin", "Sam", "Charlie", "Kim", "Jesse", "Noa", "Sky"),
}
_LAST = ("jansen", "devries", "bakker", "visser", "smit", "meijer", "mulder", "bos", "vos", "peters", "hendriks",
         "dekker", "brouwer", "dijkstra", "kok", "vermeulen", "schouten", "willems", "koster", "prins")
_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.org")
_STREETS = ("Linden", "Oak", "Church", "Mill", "Station", "Harbour", "Garden", "Meadow", "Willow", "Market", "Bridge", "School")
_SUFFIXES = ("Street", "Lane", "Road", "Avenue", "Square", "Way")


@dataclass(frozen=True)
class PersonalData:
    """Personal columns (aligned with the population) and the seeded defects."""

    frame: pd.DataFrame  # first_name, email, phone, street_address, postcode
    defects: pd.DataFrame  # kind, customer_id, detail


def _pick(rng: np.random.Generator, eligible: np.ndarray, share: float, n_total: int) -> np.ndarray:
    k = min(int(round(share * n_total)), eligible.size)
    return rng.choice(eligible, size=k, replace=False) if k else np.empty(0, dtype=np.int64)


def generate_personal(pop: Population, rng: np.random.Generator, params: WorldParams, config: NextbestConfig) -> PersonalData:
    """Draw personal data, consent and validity into ``pop`` and return the columns and defects.

    Sets ``pop.consent`` (keyed by consent column) and ``pop.valid`` (keyed by validity
    column) for every channel of ``config`` that names them.
    """
    n = len(pop)
    ids = pop.customer_id
    defects: list[pd.DataFrame] = []

    def record(kind: str, pos: np.ndarray, detail: np.ndarray | str) -> None:
        defects.append(pd.DataFrame({"kind": kind, "customer_id": ids[pos], "detail": detail}))

    # -- names
    first = np.empty(n, dtype=object)
    for g, names in _FIRST.items():
        m = pop.gender == g
        first[m] = np.asarray(names, dtype=object)[rng.integers(0, len(names), m.sum())]
    last = np.asarray(_LAST, dtype=object)[rng.integers(0, len(_LAST), n)]
    domain = np.asarray(_DOMAINS, dtype=object)[rng.integers(0, len(_DOMAINS), n)]
    first_a = pa.array(first, pa.string())
    id_a = pa.array(ids.astype(str))
    email = pc.utf8_lower(pc.binary_join_element_wise(first_a, ".", pa.array(last, pa.string()), id_a, "@", pa.array(domain, pa.string()), ""))
    email = np.asarray(email.to_pylist(), dtype=object)

    # -- phone: a bijection of the id keeps numbers unique (duplicates only where seeded)
    # 1_234_567 is coprime with 10**8, so id -> local number is one-to-one below 10**8 ids.
    local = (ids * 1_234_567 + int(rng.integers(0, 10**8))) % 100_000_000
    phone = np.asarray(pc.binary_join_element_wise("+316", pa.array(np.char.zfill(local.astype(str), 8)), "").to_pylist(), dtype=object)

    # -- address
    street = pa.array(np.asarray(_STREETS, dtype=object)[rng.integers(0, len(_STREETS), n)], pa.string())
    suffix = pa.array(np.asarray(_SUFFIXES, dtype=object)[rng.integers(0, len(_SUFFIXES), n)], pa.string())
    number = pa.array(rng.integers(1, 250, n).astype(str))
    address = np.asarray(pc.binary_join_element_wise(number, " ", street, " ", suffix, "").to_pylist(), dtype=object)
    letters = np.array(list("ABCDEFGHJKLMNPRSTVWXZ"))
    pc_letters = letters[rng.integers(0, len(letters), n)] + letters[rng.integers(0, len(letters), n)]
    postcode = np.char.add(
        np.char.add((pop.region.astype(int) + 1).astype(str), np.char.zfill(rng.integers(0, 1000, n).astype(str), 3)),
        np.char.add(" ", pc_letters),
    ).astype(object)

    # -- missing details
    email_missing = rng.random(n) < params.email_missing_share
    phone_missing = rng.random(n) < params.phone_missing_share
    address_missing = rng.random(n) < params.address_missing_share
    email[email_missing] = None
    phone[phone_missing] = None
    address[address_missing] = None

    # -- malformed details (seeded defects)
    bad_email = _pick(rng, np.flatnonzero(~email_missing), params.invalid_email_share, n)
    variant = rng.integers(0, 3, bad_email.size)
    broken = np.asarray(
        [
            e.replace("@", "") if v == 0 else e.replace("@", "@@") if v == 1 else e.replace("@", "@.")
            for e, v in zip(email[bad_email], variant)  # a few % of customers: cheap
        ],
        dtype=object,
    )
    email[bad_email] = broken
    record("invalid_email", bad_email, "malformed e-mail address")

    bad_phone = _pick(rng, np.flatnonzero(~phone_missing), params.invalid_phone_share, n)
    variant = rng.integers(0, 2, bad_phone.size)
    phone[bad_phone] = np.asarray(
        # Letters inside the number: malformed under the documented rule (warehouse/contact.py),
        # which ignores separators, so a dash alone would still be valid. Every digit is kept,
        # so malformed numbers stay unique (no accidental duplicates).
        [p[:-3] + "x" + p[-3:] if v == 0 else p[:6] + "AB" + p[6:] for p, v in zip(phone[bad_phone], variant)], dtype=object
    )
    record("invalid_phone", bad_phone, "malformed phone number")

    valid_email = ~email_missing
    valid_email[bad_email] = False
    valid_phone = ~phone_missing
    valid_phone[bad_phone] = False

    # -- duplicates: a second customer gets an existing, well-formed contact detail
    for kind, values, ok, share in (
        ("duplicate_email", email, valid_email, params.duplicate_email_share),
        ("duplicate_phone", phone, valid_phone, params.duplicate_phone_share),
    ):
        pair = _pick(rng, np.flatnonzero(ok), 2 * share, n)
        src, dup = pair[: pair.size // 2], pair[pair.size // 2 : 2 * (pair.size // 2)]
        values[dup] = values[src]
        record(kind, src, np.char.add("shared with customer ", ids[dup].astype(str)))
        record(kind, dup, np.char.add("shared with customer ", ids[src].astype(str)))

    valid_push = pop.app_user & (rng.random(n) >= 0.05)  # a few app users have no push token
    valid_address = ~address_missing
    validity = {"valid_email": valid_email, "valid_phone": valid_phone, "valid_push": valid_push, "valid_address": valid_address}

    # -- consent: grumpy customers opt in less; null (unknown) for a share per column
    no_consent = _pick(rng, np.arange(n), params.missing_consent_all_share, n)
    consent: dict[str, np.ndarray] = {}
    for ch in config.channels.channels:
        if ch.consent_field is None:
            continue
        share = params.consent_yes_share.get(ch.id, 0.4)
        p_yes = 1 / (1 + np.exp(-(np.log(share / (1 - share)) - 0.3 * pop.grumpiness)))
        c = (rng.random(n) < p_yes).astype(np.int8)
        c[rng.random(n) < params.consent_unknown_share] = -1
        consent[ch.consent_field] = c
    if consent:
        stacked = np.stack(list(consent.values()), axis=1)
        all_unknown = (stacked == -1).all(axis=1)
        first_col = next(iter(consent))
        consent[first_col][all_unknown] = 0  # only seeded customers may lack every consent
        for c in consent.values():
            c[no_consent] = -1
        record("missing_consent_all", no_consent, "consent unknown on every channel")

    pop.consent = consent
    pop.valid = {
        ch.validity_field: validity.get(ch.validity_field, np.ones(n, dtype=bool))
        for ch in config.channels.channels
        if ch.validity_field is not None
    }
    for name, arr in validity.items():
        pop.valid.setdefault(name, arr)

    frame = pd.DataFrame({"first_name": first, "email": email, "phone": phone, "street_address": address, "postcode": postcode})
    return PersonalData(frame=frame, defects=pd.concat(defects, ignore_index=True))
