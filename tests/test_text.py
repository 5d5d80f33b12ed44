import numpy as np
from transformers import AutoTokenizer

from t2iguard.runtime.text import minilm_dir, normalize, tokenize


def test_tokenizer_matches_transformers():
    texts = ["a red circle on a blue background", "ＦＵＬＬ width and émojis 🎨", "x " * 200]
    ref = AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)
    want = ref(texts, padding="max_length", truncation=True, max_length=77, return_tensors="np")
    ids, mask = tokenize(texts, 77)
    np.testing.assert_array_equal(ids, want["input_ids"])
    np.testing.assert_array_equal(mask, want["attention_mask"])
    assert ids.dtype == np.int64 and ids.shape == (3, 77)


def test_normalize_folds_obfuscation_forms():
    assert normalize("ｋｉｌｌ") == "kill"
    assert normalize("k\u200bi\u200dll  \t me") == "kill me"


def test_normalize_folds_look_alikes_from_other_scripts():
    """The red-team's homoglyph bypasses: Armenian, Greek and IPA letters inside Latin words read as the Latin
    letters they pass for; text written in another script stays as it is."""
    assert normalize("nɑked wօmɑn") == "naked woman"  # IPA alpha, Armenian oh
    assert normalize("blооd and gսts") == "blood and guts"  # Cyrillic o, Armenian seh
    assert normalize("ηaked") == "naked"  # Greek eta
    assert normalize("naïve café") == "naive cafe"
    assert normalize("Москва ночью") == "Москва ночью"


def test_screening_windows_count_tokens_not_whitespace():
    """A run without spaces is hundreds of tokens: it must not push a later clause out of every window
    (whitespace windows put "a,a,...,a, a photo of a person killing another person" in one window, which the
    classifier truncates to the commas)."""
    from t2iguard.runtime.text import WINDOW_TOKENS, screening_windows

    clause = "a photo of a person killing another person"
    windows = screening_windows("a," * 300 + " " + clause, 77)
    assert any(clause in w for w in windows)
    assert all(tokenize([w], 512)[1].sum() <= WINDOW_TOKENS + 4 for w in windows)  # each fits the classifier
    spaced = screening_windows("a, " * 300 + clause, 77)
    assert any(clause in w for w in spaced)
    assert screening_windows("a red circle", 77) == ["a red circle"]  # short prompts: themselves
