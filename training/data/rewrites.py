"""The rewrite tagger's dataset, generated from the project's templates and word lists.

Each example is a prompt with sentence tags (`t2iguard.contract.taxonomy.REWRITE_TAGS`) and character
spans labelled with `TOKEN_LABELS`: NAME (a private person's name), ADDRESS, CONTACT (phone or
email), ROLE (the person word that diversity augmentation describes), GROUP (a protected group
word) and TRAIT (a negative trait attached to it). Public figures, places and brands are left
unlabelled on purpose (anonymisation must not touch them).

Names, streets, occupations and public figures come from a `Vocab`: the hand-written lists below
(`HAND`; `HAND_HELDOUT` holds names, streets and roles never seen in training) and, where the sources
cache holds them, the public lists of `training.data.lexicons` (`public_vocab`: a train part mixed into
training, a held-out part for `evaluation.rewriter`). Public entries that collide with a word of the
hand lists or templates are dropped, so every held-out list is disjoint from everything trained on.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path

from t2iguard.contract.taxonomy import REWRITE_TAGS, TOKEN_LABELS
from t2iguard.runtime.rewrite import STATED_DEMOGRAPHIC
from t2iguard.training.data.lexicons import Lexicon, read_lexicons, split
from t2iguard.training.data.prompts import BENIGN_SUBJECTS, FIGURES, STYLES, SUFFIXES

FIRST = ("Jennifer", "John", "Maria", "David", "Sarah", "Ahmed", "Emily", "Michael", "Laura", "Tom", "Priya", "Kevin",
         "Anna", "Luis", "Grace", "Omar", "Hannah", "Peter", "Chloe", "Daniel", "Fatima", "Lucas", "Ines", "Mark",
         "Julia", "Ben", "Karen", "Steve", "Linda", "Jake", "Rachel", "Greg", "Dana", "Amy", "Lisa", "Chris", "Mei",
         "Ravi", "Kofi", "Ingrid", "Pablo", "Elena", "Jonas", "Sven", "Aiko", "Tariq", "Nora", "Diego", "Claire",
         "Marco", "Hiroshi", "Bianca", "Oscar", "Wei", "Ana", "Ivan", "Zainab", "Liam", "Emma", "Alex")
LAST = ("Walsh", "Doe", "Garcia", "Kim", "Miller", "Hassan", "Chen", "Brown", "Rossi", "Becker", "Patel", "O'Brien",
        "Novak", "Romero", "Taylor", "Nguyen", "Schmidt", "Dubois", "Kowalski", "Okafor", "Jones", "Hall", "Lopez",
        "Turner", "Adams", "Grant", "Ortiz", "Weber", "Moore", "Smith", "Johnson", "Wang", "Singh", "Ali", "Silva",
        "Murphy", "Rossi", "Yamamoto", "Kaur", "Jensen", "Popescu", "Horvat", "Nakamura", "Santos", "Clarke")
HELDOUT_FIRST = ("Olivia", "Ethan", "Sofia", "Noah", "Yuki", "Mateo", "Amara", "Felix", "Leila", "Viktor", "Aisha",
                 "Hugo", "Nadia", "Rafael", "Zoe", "Samuel")
HELDOUT_LAST = ("Fischer", "Morales", "Tanaka", "Ivanova", "Lindqvist", "Mensah", "Costa", "Haddad", "Bauer",
                "Sullivan", "Petrov", "Alvarez")
STREETS = ("Oak Street", "Elm Road", "Baker Street", "Maple Avenue", "Pine Lane", "Cedar Court", "Hill Road",
           "Church Street", "Park Avenue", "Mill Lane")
HELDOUT_STREETS = ("Willow Drive", "Birch Lane", "Harbor Way", "Chestnut Boulevard", "Aspen Place", "Quarry Road")
RELATIONS = ("my neighbour", "my neighbor", "my coworker", "my ex", "my boss", "my classmate", "my landlord",
             "my roommate", "my teacher", "my colleague", "my ex-girlfriend", "my friend", "our babysitter")
PLACES = ("Paris", "the Eiffel Tower", "Central Park", "the Golden Gate Bridge", "Tokyo", "a Starbucks cafe",
          "a Nike store", "Times Square", "the Louvre", "Big Ben", "Venice", "a McDonald's", "the Grand Canyon",
          "Mount Fuji", "an IKEA showroom", "the Sydney Opera House")
ROLES = ("ceo", "doctor", "nurse", "teacher", "engineer", "scientist", "pilot", "chef", "janitor", "lawyer",
         "programmer", "farmer", "firefighter", "police officer", "soldier", "cashier", "construction worker",
         "secretary", "housekeeper", "athlete", "criminal", "judge", "professor", "mechanic", "dancer", "person",
         "surgeon", "cleaner", "banker", "gardener")
HELDOUT_ROLES = ("architect", "pharmacist", "plumber", "librarian", "accountant", "electrician", "dentist",
                 "journalist", "receptionist", "software developer", "flight attendant", "taxi driver", "baker",
                 "security guard", "hairdresser", "social worker", "bus driver", "veterinarian", "waiter", "nanny")
#: the share of role prompts that start with the role itself, without an article (since 2026-12-05: the generator
#: had none, and a token head that reads its neighbours learned that a role follows an article)
ROLE_FIRST = 0.15
ROLE_CONTEXTS = ("", " at work", " in an office", " smiling at the camera", " in a hospital", " giving a talk",
                 " standing in front of a building", " at a desk", " portrait", " walking to work", " having lunch")
DEMOGRAPHIC = ("a black woman", "an old man", "a young asian woman", "a middle-aged white man", "an elderly woman",
               "a hispanic man", "a teenage girl", "an indian woman", "a young man", "an old woman",
               "an african american man", "a female", "a male")
GROUPS = ("mexican", "black", "jewish", "muslim", "asian", "gay", "immigrant", "arab", "indian", "romani", "chinese")
TRAITS = ("lazy", "dirty", "stupid", "violent", "greedy", "criminal", "ugly", "dangerous", "smelly", "primitive")
PERSON_WORDS = ("a person ", "a person ", "someone ", "a man ", "a woman ", "the guy ", "a girl ")
NAME_AT_END = ("a birthday card for ", "a drawing made by ", "a wedding photo of ", "a poster with the name ",
               "a cake that says happy birthday ", "a caricature of ", "a letter to ", "a painting dedicated to ",
               "a mug printed with a photo of ", "a memorial plaque for ", "a sketch drawn by ",
               "a thank-you card from ")
#: scenes a named person (private or public) can be in, beyond ROLE_CONTEXTS and ACTIVITIES
SCENES = (" at the beach", " in a cafe", " on a bench by the river", " reading a book", " holding a cup of coffee",
          " at a wedding", " in the kitchen", " riding a bicycle", " at a concert", " playing guitar", " in the garden",
          " at the gym", " with a golden retriever", " in the rain", " at graduation", " at a birthday party",
          " sitting on a couch", " on a hiking trail", " in a supermarket aisle", " laughing with friends")
ACTIVITIES = ("taking a nap", "walking down the street", "sitting on a bench", "at work", "in a shop",
              "eating lunch", "talking on the phone", "standing in a line", "driving a car", "at the market")
RISKY_UNDERSPECIFIED = ("woman dressed for a date", "two people having fun", "a girl at the beach",
                        "a model posing in a bedroom", "a hot woman", "a couple in bed", "a cheerleader",
                        "a woman in a tight dress", "a flirty waitress", "a girl getting ready for a party",
                        "two people alone in a hotel room", "a sexy nurse", "a woman lying on a bed",
                        "a yoga instructor stretching", "a man and a woman at a pool party")


@dataclass(frozen=True)
class Vocab:
    """Pools of entries per field; `draw` picks a pool uniformly, then an entry, so that a long public
    list does not drown out the hand-written one. `a + b` joins the pools."""
    first: tuple[tuple[str, ...], ...] = ()
    last: tuple[tuple[str, ...], ...] = ()
    streets: tuple[tuple[str, ...], ...] = ()
    roles: tuple[tuple[str, ...], ...] = ()
    figures: tuple[tuple[str, ...], ...] = ()

    def pool(self, rng: random.Random, name: str) -> tuple[str, ...]:
        """One non-empty pool of field `name` (drawn only when there are several)."""
        pools = [p for p in getattr(self, name) if p]
        return pools[0] if len(pools) == 1 else rng.choice(pools)

    def draw(self, rng: random.Random, name: str) -> str:
        return rng.choice(self.pool(rng, name))

    def __add__(self, other: Vocab) -> Vocab:
        return Vocab(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @classmethod
    def of(cls, lexicon: Lexicon) -> Vocab:
        return cls((lexicon.first,), (lexicon.last,), (), (lexicon.occupations,), (lexicon.figures,))


HAND = Vocab((FIRST,), (LAST,), (STREETS,), (ROLES,), (FIGURES,))
HAND_HELDOUT = Vocab((HELDOUT_FIRST,), (HELDOUT_LAST,), (HELDOUT_STREETS,), (HELDOUT_ROLES,))
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
#: occupations that carry a gender themselves ("fisherman", "housewife"): no diversity target
_GENDERED = re.compile(r"(?:m[ae]n|wife|wives|boys?|girls?|lad(?:y|ies))\b", re.IGNORECASE)


def reserved_words() -> frozenset[str]:
    """Lower-cased words of every hand-written list and template here: a public name holding one is
    dropped (it could be read as the template word, and the held-out lists must share no word with
    training)."""
    lists = (FIRST, LAST, HELDOUT_FIRST, HELDOUT_LAST, STREETS, HELDOUT_STREETS, RELATIONS, PLACES, ROLES,
             HELDOUT_ROLES, ROLE_CONTEXTS, DEMOGRAPHIC, GROUPS, TRAITS, PERSON_WORDS, NAME_AT_END, SCENES, ACTIVITIES,
             RISKY_UNDERSPECIFIED, FIGURES, STYLES, SUFFIXES)
    return frozenset(w.lower() for items in lists for item in items for w in _WORD.findall(item))


def disjoint(lexicon: Lexicon) -> Lexicon:
    """`lexicon` without entries that collide with the hand lists: names holding a reserved or demographic
    word, occupations of the hand role lists or stating a gender, public figures of `FIGURES`."""
    reserved = reserved_words()
    hand_roles = {r.lower() for r in ROLES + HELDOUT_ROLES}
    figures = {f.lower() for f in FIGURES}

    def name_ok(name: str) -> bool:
        return not STATED_DEMOGRAPHIC.search(name) and not {w.lower() for w in name.split()} & reserved

    return Lexicon(first=tuple(filter(name_ok, lexicon.first)), last=tuple(filter(name_ok, lexicon.last)),
                   occupations=tuple(o for o in lexicon.occupations if o.lower() not in hand_roles
                                     and not STATED_DEMOGRAPHIC.search(o) and not _GENDERED.search(o)),
                   figures=tuple(f for f in lexicon.figures if f.lower() not in figures))


@dataclass(frozen=True)
class PublicVocab:
    """The public lists split for the tagger (empty when the cache holds none: `sources` says what was read)."""
    train: Lexicon
    heldout: Lexicon
    sources: tuple[str, ...]


def public_vocab(root: Path | None = None) -> PublicVocab:
    """The cached public lists, cleaned of hand-list collisions, split into train and held-out parts."""
    lexicon, ids = read_lexicons(root)
    train, heldout = split(disjoint(lexicon))
    return PublicVocab(train, heldout, ids)


@dataclass
class TagExample:
    text: str
    tags: frozenset[str] = field(default_factory=frozenset)
    spans: tuple[tuple[int, int, str], ...] = ()  # (start, end, label) character spans


class _Builder:
    """Concatenates pieces, recording the character span of labelled ones."""

    def __init__(self):
        self.text, self.spans = "", []

    def add(self, piece: str, label: str | None = None) -> _Builder:
        if label and piece:
            self.spans.append((len(self.text), len(self.text) + len(piece), label))
        self.text += piece
        return self


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _name(rng: random.Random, vocab: Vocab) -> str:
    return vocab.draw(rng, "first") + (" " + vocab.draw(rng, "last") if rng.random() < 0.7 else "")


def _address(rng: random.Random, vocab: Vocab) -> str:
    return f"{rng.randint(1, 999)} {vocab.draw(rng, 'streets')}"


def _phone(rng: random.Random) -> str:
    pattern = rng.choice(("555-{}-{}", "(555) {} {}", "+1 555 {} {}"))
    return pattern.format(rng.randint(100, 999), rng.randint(1000, 9999))


def _email(rng: random.Random, vocab: Vocab) -> str:
    return f"{re.sub(r'[^a-z]', '', vocab.draw(rng, 'first').lower()) or 'me'}.{rng.randint(1, 99)}@example.com"


def _place_name(b: _Builder, rng: random.Random, vocab: Vocab, unusual: bool) -> set[str]:
    """Add a private name to the prompt, in a usual position (after a relation, before "from work", after
    "a portrait of") or, when `unusual`, also after a person word, before an apposition, before a public
    place, at the start or at the end; returns the extra tags it implies."""
    form = rng.randrange(9 if unusual else 4)
    if form in (0, 3):
        b.add(rng.choice(RELATIONS) + " ").add(_name(rng, vocab), "NAME")
        b.add(" and her kids" if form == 3 else "")
    elif form == 1:
        b.add(_name(rng, vocab), "NAME").add(rng.choice((" from accounting", " from my class", " next door",
                                                          " from the gym", " from work")))
    elif form == 2:
        b.add("a portrait of ").add(_name(rng, vocab), "NAME").add(", " + rng.choice(RELATIONS)[3:])
    elif form == 4:  # after a person word: "a person <Name> in the office"
        b.add(rng.choice(PERSON_WORDS)).add(_name(rng, vocab), "NAME").add(rng.choice(ROLE_CONTEXTS + SCENES))
    elif form == 5:  # before an apposition: "<Name>, a baker, at work"
        r = vocab.draw(rng, "roles")
        b.add(_name(rng, vocab), "NAME").add(f", {_article(r)} ").add(r, "ROLE").add("," + rng.choice(SCENES))
        return {"person-unspecified"}
    elif form == 6:
        b.add(rng.choice(("portrait of ", "a photo of ", "a selfie of "))).add(_name(rng, vocab), "NAME")
        b.add(f" at {rng.choice(PLACES)}")
    elif form == 7:  # at the start
        b.add(_name(rng, vocab), "NAME").add(rng.choice(SCENES + tuple(" " + a for a in ACTIVITIES)))
    else:  # at the end
        b.add(rng.choice(NAME_AT_END)).add(_name(rng, vocab), "NAME")
    return set()


def private(rng: random.Random, vocab: Vocab = HAND, unusual: bool = True) -> TagExample:
    b = _Builder().add(rng.choice(STYLES))
    tags = {"private-individual"} | _place_name(b, rng, vocab, unusual)
    extra = rng.randrange(4)
    if extra == 0:
        b.add(" at ").add(_address(rng, vocab), "ADDRESS")
    elif extra == 1:
        b.add(rng.choice((", phone ", ", call ", " with the number "))).add(_phone(rng), "CONTACT")
    elif extra == 2:
        b.add(rng.choice((", email ", " (contact: "))).add(_email(rng, vocab), "CONTACT")
    b.add(rng.choice(SUFFIXES))
    return TagExample(b.text, frozenset(tags), tuple(b.spans))


def public_or_place(rng: random.Random) -> TagExample:
    """Named public figures, places and brands: nothing to anonymise."""
    subject = rng.choice((f"{rng.choice(FIGURES)} giving a speech", f"a photo of {rng.choice(PLACES)} at night",
                          f"tourists at {rng.choice(PLACES)}", f"{rng.choice(FIGURES)} at {rng.choice(PLACES)}",
                          f"a coffee cup in {rng.choice(PLACES)}"))
    return TagExample(rng.choice(STYLES) + subject + rng.choice(SUFFIXES))


def public_figure(rng: random.Random, vocab: Vocab = HAND) -> TagExample:
    """A public figure of `vocab` in the positions private names take: nothing to anonymise."""
    figure = vocab.draw(rng, "figures")
    subject = rng.choice((f"{figure} giving a speech", f"portrait of {figure} at {rng.choice(PLACES)}",
                          f"{figure} {rng.choice(ACTIVITIES)}", f"a poster of {figure}", f"a caricature of {figure}",
                          f"{figure}{rng.choice(SCENES)}", f"{rng.choice(NAME_AT_END)}{figure}"))
    return TagExample(rng.choice(STYLES) + subject + rng.choice(SUFFIXES))


def role(rng: random.Random, vocab: Vocab = HAND) -> TagExample:
    r = vocab.draw(rng, "roles")
    if rng.random() < ROLE_FIRST:  # the role as the prompt's first word, no article ("Nurse in a hospital")
        b = _Builder().add(r[:1].upper() + r[1:] if rng.random() < 0.5 else r, "ROLE")
        b.add(rng.choice(ROLE_CONTEXTS) + rng.choice(SUFFIXES))
        return TagExample(b.text, frozenset({"person-unspecified"}), tuple(b.spans))
    b = _Builder().add(rng.choice(("", "a photo of ", "an image of ", "portrait of ", "a painting of ", "draw ")))
    adjective = rng.choice(("", "", "", "beautiful ", "successful ", "happy ", "tired "))
    b.add(f"{_article(adjective or r)} {adjective}").add(r, "ROLE")
    b.add(rng.choice(ROLE_CONTEXTS) + rng.choice(SUFFIXES))
    return TagExample(b.text, frozenset({"person-unspecified"}), tuple(b.spans))


def stated(rng: random.Random, vocab: Vocab = HAND) -> TagExample:
    """People whose demographics the prompt already states: leave alone."""
    who = rng.choice(DEMOGRAPHIC)
    r = rng.choice(vocab.pool(rng, "roles") + ("",))
    text = rng.choice(("", "a photo of ", "portrait of ")) + who + (f" {r}" if r and rng.random() < 0.6 else "")
    return TagExample(text + rng.choice(ROLE_CONTEXTS) + rng.choice(SUFFIXES))


def framing(rng: random.Random) -> TagExample:
    b = _Builder().add(rng.choice(("", "a photo of ", "an illustration of ")) + "a ")
    b.add(rng.choice(TRAITS), "TRAIT").add(" ").add(rng.choice(GROUPS), "GROUP")
    b.add(rng.choice((" person ", " man ", " woman ", " family ", " people "))).add(rng.choice(ACTIVITIES))
    return TagExample(b.text, frozenset({"negative-group-framing"}), tuple(b.spans))


def group_neutral(rng: random.Random) -> TagExample:
    """A group named without a negative trait, or a trait without a group: no framing."""
    if rng.random() < 0.5:
        text = f"a {rng.choice(GROUPS)} {rng.choice(('family', 'woman', 'man', 'person'))} {rng.choice(ACTIVITIES)}"
    else:
        text = f"a {rng.choice(TRAITS)} {rng.choice(('cat', 'dog', 'robot', 'monster', 'villain'))} " \
               f"{rng.choice(ACTIVITIES)}"
    return TagExample(rng.choice(STYLES) + text)


def risky(rng: random.Random) -> TagExample:
    return TagExample(rng.choice(STYLES) + rng.choice(RISKY_UNDERSPECIFIED) + rng.choice(SUFFIXES),
                      frozenset({"sexualisation-risk"}))


def plain(rng: random.Random) -> TagExample:
    return TagExample(rng.choice(STYLES) + rng.choice(BENIGN_SUBJECTS) + rng.choice(SUFFIXES))


def generate(seed: int = 0, n: int = 12000, vocab: Vocab = HAND) -> list[TagExample]:
    """Training data: a mix of every kind, deterministic for `seed` and `vocab`. Public figures in the positions of
    private names are 12% (6% until 2026-12-05: with the token head reading its neighbours, a name in a name's
    position was anonymised whoever it named, and held-out public figures kept fell from 76.3% to 70.9%). The
    6 points come from the role prompts (20% -> 14%); taken from the prompts without people instead, public
    figures kept rose to 81.9% but "a shape number 3" was tagged as a person (`tests/test_serving.py`)."""
    rng = random.Random(seed)
    makers = ((partial(private, vocab=vocab), 0.24), (public_or_place, 0.06),
              (partial(public_figure, vocab=vocab), 0.12), (partial(role, vocab=vocab), 0.14),
              (partial(stated, vocab=vocab), 0.1), (framing, 0.08), (group_neutral, 0.07), (risky, 0.07), (plain, 0.12))
    out = []
    for _ in range(n):
        maker = rng.choices([m for m, _ in makers], weights=[w for _, w in makers])[0]
        out.append(maker(rng))
    assert set(REWRITE_TAGS) >= {t for e in out for t in e.tags}
    assert set(TOKEN_LABELS) >= {s[2] for e in out for s in e.spans}
    return out
