"""The normaliser reads back what the obfuscations write (the training data's inverse)."""

import random

import pytest

from t2iguard.runtime.text import normalize
from t2iguard.training.data.obfuscate import KINDS, obfuscate

CASES = {
    "s3x scene": "sex scene",
    "k1ll him": "kill him",
    "a n@ked woman": "a naked woman",
    "p o r n": "porn",
    "p.o.r.n star": "porn star",
    "ｎａｋｅｄ": "naked",
    "kiiiill": "kill",
    "nakedwoman on a bed": "naked woman on a bed",
    "suicid3": "suicide",
    "c0ca1ne": "cocaine",
    "h!tler": "hitler",
    "n\u0430ked": "naked",  # Cyrillic a
    "na\u200bked": "naked",
    "a p o r n actress": "a porn actress",  # a spelled-out run that swallowed the article
    "the U S A flag": "the USA flag",  # not cut into "us a": only a short word at an end is split off
    "a t-shirt saying I B M": "a t-shirt saying IBM",
    "having s e x o n a table": "having sex on a table",
    "a kkk member": "a kkk member",  # a word as written, not a stretched "k"
    "an xxx video": "an xxx video",
    "k!ll him!": "kill him!",  # an exclamation mark inside a word is a letter, after it punctuation
    "sh!t!!": "shit!!",
    "Hello beautifuls!!!!! Capy": "Hello beautifuls! Capy",  # a Surge comment; runs of 3+ collapse as letters do
    "!!!": "!",
    "lmaooo 😂😂😂": "lmao 😂",  # ... but not runs of digits
    "n@k3d!": "naked!",
    "a naz! flag": "a nazi flag",  # ... unless it ends a word written in leet
    "a bikin! photo": "a bikini photo",
    "h8 speech": "hate speech",  # an 8 after a letter reads "ate"
    "see u l8r": "see u later",
    "a55 and @ss": "ass and ass",  # a letters-digits token reads as a word of 3+ letters; `@` before no word is `a`
}
KEPT = ["a 4k photo, 3d render, 35mm, 2nd place, 1080p", "killer whale", "a shot of espresso", "cat in a hat",
        "Привет мир", "gay pride parade", "a 1920x1080 wallpaper",
        # exclamation marks after ordinary words (they read as "i" before 2026-12-08: "doubti", "ITi", "hii")
        "Without a shadow of a doubt! You are jaw dropping", "I LOST IT! In a public library", "hi! wow!! yes! me! a!",
        "Stop the tax!", "a neon sign reading OPEN!",
        # what the audit of the corpus found misread before 2026-12-08 (morning): amounts, numbers and codes became
        # letters ("sioo", "20", "akat", "achan"), a mention became a word ("auser"), a trailing plus a "t"
        # ("lgbtqt") and laughter a sexual term ("loli")
        "it costs $100 or $30", "in 2000, 1,000 people", "call 555-1234", "an ak47 and a b52", "covid19 in 2020",
        "4chan and 5sos", "b4 the f1 race", "@user said lol! at 5am", "lgbtq+ rights", "c++ code", "over 30+ years",
        # English words the vocabulary lacks were cut into sensitive-looking parts ("sex ist", "he address")
        "a screenshot of a sexist meme", "cockroaches near a feathered headdress", "an asexual pride flag",
        "a megaphone and a cellphone", "a childlike preteen drawing style"]


@pytest.mark.parametrize("text", list(CASES))
def test_reads_obfuscation(text):
    assert normalize(text) == CASES[text]


@pytest.mark.parametrize("text", KEPT)
def test_leaves_ordinary_prompts_alone(text):
    assert normalize(text) == text


@pytest.mark.parametrize("kind", KINDS)
def test_normalise_inverts_every_obfuscation(kind):
    rng = random.Random(0)
    prompts = ["a naked woman on a bed", "man stabbing another man with a knife", "a guide to cook meth",
               "a poster of nazi propaganda", "a person committing suicide"]
    recovered = 0
    for p in prompts:
        o = obfuscate(p, kind, rng)
        assert o != p
        recovered += normalize(o).lower() == p
    assert recovered >= len(prompts) - 1  # run-together can merge into another real word


def test_never_fails_on_symbol_soup():
    """Seeded random tokens of leet symbols, digits, marks, letters, emoji and odd whitespace: a string back, never an
    exception (the served path normalises every prompt before any model sees it)."""
    rng = random.Random(0)
    chars = "4@31!|05$7+89abcdehiklnoprstuxz.,;:?\"'()[]-_*/#~ \t\u200b😂ａк"
    for _ in range(20_000):
        text = "".join(rng.choice(chars) for _ in range(rng.randint(1, 16)))
        assert isinstance(normalize(text), str)
