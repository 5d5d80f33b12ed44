"""The rewrite tagger's dataset, generated from the project's own templates (no outside data).

Each example is a prompt with sentence tags (`t2iguard.contract.taxonomy.REWRITE_TAGS`) and character
spans labelled with `TOKEN_LABELS`: NAME (a private person's name), ADDRESS, CONTACT (phone or
email), ROLE (the person word that diversity augmentation describes), GROUP (a protected group
word) and TRAIT (a negative trait attached to it). Public figures, places and brands are left
unlabelled on purpose (anonymisation must not touch them). Training and evaluation name lists
are disjoint (`heldout=True` draws names, streets and roles never seen in training).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from t2iguard.contract.taxonomy import REWRITE_TAGS, TOKEN_LABELS
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
ROLE_CONTEXTS = ("", " at work", " in an office", " smiling at the camera", " in a hospital", " giving a talk",
                 " standing in front of a building", " at a desk", " portrait", " walking to work", " having lunch")
DEMOGRAPHIC = ("a black woman", "an old man", "a young asian woman", "a middle-aged white man", "an elderly woman",
               "a hispanic man", "a teenage girl", "an indian woman", "a young man", "an old woman",
               "an african american man", "a female", "a male")
GROUPS = ("mexican", "black", "jewish", "muslim", "asian", "gay", "immigrant", "arab", "indian", "romani", "chinese")
TRAITS = ("lazy", "dirty", "stupid", "violent", "greedy", "criminal", "ugly", "dangerous", "smelly", "primitive")
ACTIVITIES = ("taking a nap", "walking down the street", "sitting on a bench", "at work", "in a shop",
              "eating lunch", "talking on the phone", "standing in a line", "driving a car", "at the market")
RISKY_UNDERSPECIFIED = ("woman dressed for a date", "two people having fun", "a girl at the beach",
                        "a model posing in a bedroom", "a hot woman", "a couple in bed", "a cheerleader",
                        "a woman in a tight dress", "a flirty waitress", "a girl getting ready for a party",
                        "two people alone in a hotel room", "a sexy nurse", "a woman lying on a bed",
                        "a yoga instructor stretching", "a man and a woman at a pool party")


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


def _name(rng: random.Random, heldout: bool) -> str:
    first, last = (HELDOUT_FIRST, HELDOUT_LAST) if heldout else (FIRST, LAST)
    return rng.choice(first) + (" " + rng.choice(last) if rng.random() < 0.7 else "")


def _address(rng: random.Random, heldout: bool) -> str:
    return f"{rng.randint(1, 999)} {rng.choice(HELDOUT_STREETS if heldout else STREETS)}"


def _phone(rng: random.Random) -> str:
    pattern = rng.choice(("555-{}-{}", "(555) {} {}", "+1 555 {} {}"))
    return pattern.format(rng.randint(100, 999), rng.randint(1000, 9999))


def _email(rng: random.Random, heldout: bool) -> str:
    return f"{rng.choice(HELDOUT_FIRST if heldout else FIRST).lower()}.{rng.randint(1, 99)}@example.com"


def private(rng: random.Random, heldout: bool = False) -> TagExample:
    b = _Builder().add(rng.choice(STYLES))
    form = rng.randrange(4)
    if form == 0:
        b.add(rng.choice(RELATIONS) + " ").add(_name(rng, heldout), "NAME")
    elif form == 1:
        b.add(_name(rng, heldout), "NAME").add(rng.choice((" from accounting", " from my class", " next door",
                                                           " from the gym", " from work")))
    elif form == 2:
        b.add("a portrait of ").add(_name(rng, heldout), "NAME").add(", " + rng.choice(RELATIONS)[3:])
    else:
        b.add(rng.choice(RELATIONS) + " ").add(_name(rng, heldout), "NAME").add(" and her kids")
    extra = rng.randrange(4)
    if extra == 0:
        b.add(" at ").add(_address(rng, heldout), "ADDRESS")
    elif extra == 1:
        b.add(rng.choice((", phone ", ", call ", " with the number "))).add(_phone(rng), "CONTACT")
    elif extra == 2:
        b.add(rng.choice((", email ", " (contact: "))).add(_email(rng, heldout), "CONTACT")
    b.add(rng.choice(SUFFIXES))
    return TagExample(b.text, frozenset({"private-individual"}), tuple(b.spans))


def public_or_place(rng: random.Random) -> TagExample:
    """Named public figures, places and brands: nothing to anonymise."""
    subject = rng.choice((f"{rng.choice(FIGURES)} giving a speech", f"a photo of {rng.choice(PLACES)} at night",
                          f"tourists at {rng.choice(PLACES)}", f"{rng.choice(FIGURES)} at {rng.choice(PLACES)}",
                          f"a coffee cup in {rng.choice(PLACES)}"))
    return TagExample(rng.choice(STYLES) + subject + rng.choice(SUFFIXES))


def role(rng: random.Random, heldout: bool = False) -> TagExample:
    r = rng.choice(HELDOUT_ROLES if heldout else ROLES)
    article = "an" if r[0].lower() in "aeiou" else "a"
    b = _Builder().add(rng.choice(("", "a photo of ", "an image of ", "portrait of ", "a painting of ", "draw ")))
    adjective = rng.choice(("", "", "", "beautiful ", "successful ", "happy ", "tired "))
    article = "an" if (adjective or r)[0].lower() in "aeiou" else "a"
    b.add(f"{article} {adjective}").add(r, "ROLE").add(rng.choice(ROLE_CONTEXTS) + rng.choice(SUFFIXES))
    return TagExample(b.text, frozenset({"person-unspecified"}), tuple(b.spans))


def stated(rng: random.Random) -> TagExample:
    """People whose demographics the prompt already states: leave alone."""
    who = rng.choice(DEMOGRAPHIC)
    r = rng.choice(ROLES + ("",))
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


def generate(seed: int = 0, n: int = 8000) -> list[TagExample]:
    """Training data: a mix of every kind, deterministic for `seed`."""
    rng = random.Random(seed)
    makers = ((private, 0.2), (public_or_place, 0.1), (role, 0.2), (stated, 0.12), (framing, 0.1),
              (group_neutral, 0.08), (risky, 0.08), (plain, 0.12))
    out = []
    for _ in range(n):
        maker = rng.choices([m for m, _ in makers], weights=[w for _, w in makers])[0]
        out.append(maker(rng))
    assert set(REWRITE_TAGS) >= {t for e in out for t in e.tags}
    assert set(TOKEN_LABELS) >= {s[2] for e in out for s in e.spans}
    return out
