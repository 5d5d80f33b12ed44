"""Identity swaps: a benign text with the group it names replaced by people of no protected identity.

A hate classifier trained on text where groups are named mostly in hate learns the group's name as a trigger: the
file trained with the twins' ranking loss (docs/2026-12-03-prompt-guard-real-data.md, 2026-12-07 night) flags most
of HateCheck's positive and neutral statements about groups at the out-of-source point. Counterfactual logit
pairing (Garg et al. 2019, "Counterfactual fairness in text classification through robustness") asks a benign
text and its swap to score alike; `swap_identity` makes the swap. Measured once (`--swap-weight 1`, the same
study): on every category's logits it did not lower those flags and flattened every category's scores; on hate
and harassment only (`--swap-categories`) it lowered them part of the way and the public hate sets' ranking with
them; not shipped.
"""

from __future__ import annotations

import random
import re

from t2iguard.training.data.stance import TARGETS

#: the groups a swap replaces: the stance targets, and the plural nouns public text names groups by (plural only:
#: "black" or "gay" alone also describe a dress or a party)
IDENTITIES = TARGETS + ("Muslim people", "Jews", "Blacks", "Asians", "Mexicans", "gays", "homosexuals",
                        "transgender people", "refugees", "Hindus", "Sikhs", "Africans", "Latinos", "feminists")
#: who replaces them: people named by something no policy protects
NEUTRAL = ("people", "my neighbours", "the students", "the tourists", "the office workers", "the commuters",
           "the fans", "the farmers")
_PATTERN = re.compile(r"\b(" + "|".join(sorted((re.escape(t) for t in set(IDENTITIES)), key=len, reverse=True))
                      + r")\b", re.IGNORECASE)


def swap_identity(text: str, rng: random.Random) -> str | None:
    """`text` with every group it names (`IDENTITIES`, whole words, any case) replaced by one `NEUTRAL` noun drawn
    from `rng` (capitalised where a sentence starts), or None when it names none."""
    if not _PATTERN.search(text):
        return None
    neutral = rng.choice(NEUTRAL)

    def replace(m: re.Match) -> str:
        starts = not text[:m.start()].strip() or text[:m.start()].rstrip()[-1] in ".!?:'\""
        return neutral[:1].upper() + neutral[1:] if starts else neutral

    return _PATTERN.sub(replace, text)
