"""`t2iguard train prompt-classifier`: fine-tune the prompt classifier on the corpus.

MiniLM (from its package) gets low-rank adapters (LoRA, r=8, on attention query/value) trained
together with an MLP head; only the adapters and the head are committed (safetensors, fp16,
about 350 KB); the build merges the adapters into the encoder before ONNX export. Steps: the dataset
(`corpus_dataset`: the public sources laid into the cache by `t2iguard data import`, deduplicated against the
evaluation sets, with the project's templates, counterfactual twins and hard negatives; or `templates_dataset`,
the recipe before issue 21), every prompt normalised as `text_normalize` does, weighted binary cross-entropy,
a threshold per category calibrated on the validation split as served (max of the whole prompt's and its
`PROMPT_WINDOW`-token windows' scores), and the weights and thresholds written (the thresholds as a new policy
version). About 40 minutes on 2 CPU cores for the corpus; resumable from its checkpoint in the cache.

Why adapters and not a head on the frozen encoder: on sets neither was trained on, the frozen-encoder head with
an exemplar bank (`training/prompt_head.py`) caught far fewer unsafe prompts than the adapters
(docs/2026-12-03-prompt-guard-real-data.md). `head_init="probe"` (LP-FT) starts the adapters' training from such a
head: it keeps more of the frozen encoder's ranking of hate against counter-speech (HateCheck AUROC 0.784 against
0.731 from a random head, one seed; not shipped, same study). `init=FILE` continues a trained file instead
(`warm_start`: its adapters at their own rank and its head, at `WARM_LR`), so the result keeps what the file
catches and soups with it (WiSE-FT's idea; measured in the same study, not shipped). `pair_weight` adds a
logistic ranking loss over the training twins (`pair_loss`): paid only for the difference between a twin's sides,
which cross-entropy, scoring each side alone, lets the shared words carry; `swap_weight` adds counterfactual logit
pairing over benign rows that name a group (`swap_loss`). Both measured in the same study (2026-12-07 night), not
shipped: the first taught the stance and made naming a group a trigger, the second flattened the scores.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import random
import re
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from t2iguard.contract.policy import DEFAULT_POLICY, load_policy
from t2iguard.contract.profiles import get_profile
from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.export.build import cache_root
from t2iguard.export.modules import PROMPT_WINDOW, MLPHead, SentenceScorer, masked_mean
from t2iguard.export.tiny import (
    ADAPTERS,
    LORA,
    LOW_RANK,
    PROMPT_CLASSIFIER_CHECKPOINT,
    apply_low_rank,
    load_minilm,
    lora_encoder,
    low_rank_change,
)
from t2iguard.runtime.text import normalize, tokenize
from t2iguard.training.data.augment import SHARE, fragments_of, variant
from t2iguard.training.data.prompts import generate, split_of
from t2iguard.training.embed import score

HIDDEN = 256
BATCH = 64
LR = 1e-3  # of the head, and of the shipped adapters
CHECKPOINT_EVERY = 50

#: twins per step for the pair loss (`pair_loss`), and benign rows per step for the swap loss (`swap_loss`), drawn
#: besides the `BATCH` rows
PAIR_BATCH = 8
SWAP_BATCH = 8

#: operating point: per category, at most this share of benign / hard-negative validation prompts flagged
BENIGN_FPR = 0.001
HARD_FPR = 0.01
#: threshold floor per category (policy choice: stricter for sexual content involving minors)
FLOOR = {"sexual/minors": 0.3}
MAX_THRESHOLD = 0.98


@dataclass
class TrainResult:
    weights: Path
    thresholds: dict[str, float]
    val: dict[str, float]
    seconds: float
    examples: int


def _batches(n: int, size: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n, size):
        yield perm[i:i + size]


def twin_pairs(pair: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """int64 [P, 2]: (benign row, unsafe row) of every twin pair whose two sides are both among the rows; `pair`
    (str [N], "" for rows that are no twin) and `groups` (str [N]) as `Dataset` has them. A side dropped by the
    near-duplicate check leaves its partner out; pairs in the order their benign side comes."""
    sides: dict[str, dict[str, int]] = {}
    for i, (p, g) in enumerate(zip(pair, groups, strict=True)):
        if p:
            sides.setdefault(p, {})["unsafe" if g == "unsafe" else "benign"] = i
    rows = sorted((s["benign"], s["unsafe"]) for s in sides.values() if len(s) == 2)
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


#: which sides of a twin pair the ranking loss moves: both, or only the benign side (the unsafe side's logit a fixed
#: target, left to cross-entropy)
PAIR_SIDES = ("both", "benign")


def pair_loss(benign: torch.Tensor, unsafe: torch.Tensor, labels: torch.Tensor, sides: str = "both") -> torch.Tensor:
    """Logistic ranking loss over twin pairs: mean over pairs of mean over the unsafe side's categories of
    softplus(benign logit - unsafe logit). `benign`, `unsafe`: float32 [P, C] logits of the two sides; `labels`:
    float32 [P, C], the unsafe side's targets (each row has at least one 1). Cross-entropy scores each side
    alone, so the words both sides share can carry it; this term is paid only for the difference between them,
    the harmful element (or the stance) the twins differ in. `sides="benign"`: no gradient reaches the unsafe side."""
    if sides == "benign":
        unsafe = unsafe.detach()
    per = torch.nn.functional.softplus(benign - unsafe) * labels
    return (per.sum(1) / labels.sum(1)).mean()


def identity_swaps(texts: list[str], groups: np.ndarray, seed: int) -> list[tuple[int, str]]:
    """[(row, its swap)]: every benign or risky-looking benign row of `texts` that names a group, with the group
    replaced by people of no protected identity (`training.data.identity.swap_identity`, seeded)."""
    from t2iguard.training.data.identity import swap_identity

    rng = random.Random(seed)
    swaps = ((i, swap_identity(t, rng)) for i, (t, g) in enumerate(zip(texts, groups, strict=True)) if g != "unsafe")
    return [(i, s) for i, s in swaps if s is not None]


def swap_loss(original: torch.Tensor, swapped: torch.Tensor, on: torch.Tensor | None = None) -> torch.Tensor:
    """Counterfactual logit pairing: mean absolute difference of float32 [S, C] logits of benign texts and their
    identity swaps, over every category or, given `on` (bool [C]), over those: a benign text's scores should not
    depend on which group it names."""
    diff = (original - swapped).abs()
    return diff.mean() if on is None else diff[:, on].mean()


def _fit(texts: list[str], y: np.ndarray, w: np.ndarray, seed: int, epochs: int, seq_len: int, say,
         checkpoint: Path | None = None, max_steps: int | None = None, adapter: dict | None = LORA,
         encoder_lr: float = LR, head_state: dict[str, torch.Tensor] | None = None,
         encoder_state: dict[str, torch.Tensor] | None = None, head_lr: float = LR,
         pairs: np.ndarray | None = None, pair_weight: float = 0.0, pair_sides: str = "both",
         swaps: list[tuple[int, str]] | None = None, swap_weight: float = 0.0,
         swap_categories: tuple[str, ...] | None = None):
    """LoRA adapters (`adapter`: peft `LoraConfig` fields; None: the whole encoder fine-tuned), trained at
    `encoder_lr`, + head (at `head_lr`) by weighted binary cross-entropy (`w`: float32 [N], one weight per row), for
    `epochs` or, given `max_steps`, at most that many steps. `head_state`: the head starts there (`probe_head`: a
    head already fitted on the frozen encoder; `warm_start`: a trained file's head) instead of at a random init;
    `encoder_state`: the adapters start there (`warm_start`). With `checkpoint`, the state (trained
    encoder weights, head, optimiser, step) is saved there every `CHECKPOINT_EVERY` steps and a run with the same
    checkpoint path resumes from it: the batch order is a function of (seed, epoch) only. `pairs` (`twin_pairs`, rows
    of `texts`) with `pair_weight` > 0: each step also draws `PAIR_BATCH` twin pairs (a function of (seed, step)) and
    adds `pair_weight` x `pair_loss` to the cross-entropy, in the same encoder pass; `swaps` (`identity_swaps`) with
    `swap_weight` > 0, `SWAP_BATCH` benign rows and their identity swaps and `swap_weight` x `swap_loss` (over
    `swap_categories`; None: every category), the same way."""
    torch.manual_seed(seed)
    encoder = load_minilm() if adapter is None else lora_encoder(adapter)
    head = MLPHead(encoder.config.hidden_size, HIDDEN, y.shape[1], dropout=0.2)
    if head_state is not None:
        head.load_state_dict(head_state)
    if encoder_state is not None:  # `warm_start` checked that these are exactly the encoder's adapters
        encoder.load_state_dict(encoder_state, strict=False)
    if adapter is None:
        encoder.requires_grad_(True)
    trained = [p for p in encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": trained, "lr": encoder_lr},
                             {"params": list(head.parameters())}], lr=head_lr, weight_decay=0.05)
    targets, weights = torch.from_numpy(y), torch.from_numpy(w)
    use_pairs = pairs is not None and len(pairs) > 0 and pair_weight > 0
    pair_rows = torch.from_numpy(pairs) if use_pairs else None
    use_swaps = bool(swaps) and swap_weight > 0
    swap_on = None if swap_categories is None else torch.tensor([c in swap_categories for c in CATEGORIES])
    per_epoch = -(-len(texts) // BATCH)
    steps, done = min(epochs * per_epoch, epochs * per_epoch if max_steps is None else max_steps), 0
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=True)
        encoder.load_state_dict(state["encoder"], strict=False)
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["opt"])
        done = int(state["step"])
        say(f"resumed at step {done}/{steps} from {checkpoint}")
    for epoch in range(done // per_epoch, epochs):
        encoder.train()
        head.train()
        gen = torch.Generator().manual_seed(seed * 1000 + epoch)
        for i, idx in enumerate(_batches(len(texts), BATCH, gen)):
            if epoch * per_epoch + i < done:
                continue
            if done == steps:
                break
            drawn = torch.empty((0, 2), dtype=torch.int64)
            if use_pairs:
                pick = torch.Generator().manual_seed(seed * 1_000_003 + done)
                drawn = pair_rows[torch.randint(len(pair_rows), (PAIR_BATCH,), generator=pick)]
            swapped = []
            if use_swaps:
                pick = torch.Generator().manual_seed(seed * 1_000_003 + done + 500_000_000)
                swapped = [swaps[int(j)] for j in torch.randint(len(swaps), (SWAP_BATCH,), generator=pick)]
            rows = torch.cat([idx, drawn[:, 0], drawn[:, 1], torch.tensor([i for i, _ in swapped], dtype=torch.int64)])
            batch = [texts[int(j)] for j in rows] + [t for _, t in swapped]
            ids, mask = (torch.from_numpy(a) for a in tokenize(batch, seq_len))
            width = int(mask.sum(1).max())
            hidden = encoder(input_ids=ids[:, :width], attention_mask=mask[:, :width]).last_hidden_state
            all_logits = head.logits(masked_mean(hidden, mask[:, :width]))
            logits = all_logits[:len(idx)]
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, targets[idx], reduction="none")
                    .mean(1) * weights[idx]).sum() / weights[idx].sum()
            if use_pairs:
                benign, unsafe = all_logits[len(idx):len(idx) + 2 * len(drawn)].split(len(drawn))
                loss = loss + pair_weight * pair_loss(benign, unsafe, targets[drawn[:, 1]], pair_sides)
            if use_swaps:
                original, swap = all_logits[len(idx) + 2 * len(drawn):].split(len(swapped))
                loss = loss + swap_weight * swap_loss(original, swap, swap_on)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done % 20 == 0:
                say(f"epoch {epoch + 1}/{epochs} step {done}/{steps} loss {loss.item():.4f}")
            if checkpoint is not None and (done % CHECKPOINT_EVERY == 0 or done == steps):
                checkpoint.parent.mkdir(parents=True, exist_ok=True)
                tmp = checkpoint.with_suffix(".tmp")
                torch.save({"encoder": {k: v for k, v in encoder.state_dict().items()
                                        if adapter is None or "lora_" in k},
                            "head": head.state_dict(), "opt": opt.state_dict(), "step": done}, tmp)
                tmp.replace(checkpoint)
    return encoder.eval(), head.eval()


#: how the head starts: random (the shipped recipe) or probe (LP-FT: fitted on the frozen encoder first)
HEAD_INITS = ("random", "probe")
#: learning rate of adapters and head when training continues from a trained file (`warm_start`): a fifth of a
#: fresh run's, so that a pass over the corpus moves the file, not restarts it
WARM_LR = 2e-4


@dataclass
class Start:
    """Where a continued run starts (`warm_start`): a trained file's adapters and head, float32."""
    config: dict  # the file's peft LoraConfig fields (its own rank)
    adapters: dict[str, torch.Tensor]  # peft state-dict names (`lora_A`/`lora_B`), as `lora_encoder(config)` has them
    head: dict[str, torch.Tensor]  # `MLPHead` state
    seed: str  # the file's seed: the continued file records it, so a soup with the file finds a shared start
    file: dict[str, str]  # {"file": name, "sha256_16": ...}: the continued file's `init` metadata


def warm_start(path: Path) -> Start:
    """The start of a run that continues the trained prompt-classifier file `path` (`train(init=path)`). The file's
    own adapter rank is kept (a soup's is the sum of its parents'), so the continued model and `path` share a start
    and can be souped (`training/prompt_soup.py`). Checked in seconds, before any corpus is read: ValueError for a
    file without LoRA adapters on the shipped modules (a low-rank change or a frozen encoder), with other categories,
    another head width or no seed, or whose adapters or head do not load exactly into `lora_encoder(config)` and
    the head."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    config = json.loads(meta.get("lora", "null"))
    if config is None or config.get("target_modules") != LORA["target_modules"]:
        raise ValueError(f"{path} carries no LoRA adapters on {LORA['target_modules']}: nothing to continue from")
    if json.loads(meta.get("categories", "null")) != list(CATEGORIES) or meta.get("hidden") != str(HIDDEN):
        raise ValueError(f"{path} was trained for other categories or another head width (hidden {HIDDEN})")
    if "seed" not in meta:
        raise ValueError(f"{path} records no seed: a continued file could not name its shared start")
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    adapters = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    head = {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
    encoder = lora_encoder(config)
    wanted = {k for k in encoder.state_dict() if "lora_" in k}
    if set(adapters) != wanted:
        raise ValueError(f"{path}'s adapters do not match LoRA r={config.get('r')} on {config['target_modules']}: "
                         f"{sorted(set(adapters) ^ wanted)[:3]}")
    try:
        encoder.load_state_dict(adapters, strict=False)
        MLPHead(encoder.config.hidden_size, HIDDEN, len(CATEGORIES), dropout=0.2).load_state_dict(head)
    except RuntimeError as e:  # a shape that does not fit
        raise ValueError(f"{path} does not load into its own configuration: {str(e).splitlines()[0]}") from None
    return Start(config, adapters, head, meta["seed"],
                 {"file": path.name, "sha256_16": hashlib.sha256(path.read_bytes()).hexdigest()[:16]})


def probe_head(texts: list[str], y: np.ndarray, w: np.ndarray, seed: int, say=lambda msg: None
               ) -> dict[str, torch.Tensor]:
    """The first step of LP-FT (linear probe, then fine-tune; Kumar et al. 2022, "Fine-Tuning can Distort
    Pretrained Features and Underperform Out-of-Distribution"): the head fitted on the frozen encoder's embeddings
    of `texts` (`prompt_head.fit_head` on the embedding cache, which embeds what it lacks: minutes for the
    augmented variants on a first run, then seconds). `y`: float32 [N, C], `w`: float32 [N]. Fine-tuning from
    this head starts with small gradients into the encoder, instead of a random head's, which is what moves
    the pretrained representation away from what it knew about text unlike the training rows. The cache's
    embeddings are unit-normalised and the served pooling is not: the head's first LayerNorm makes that equal. The
    cache embeds at `corpus.EMBED_SEQ_LEN` (64) tokens, training at the profile's (77): a prompt longer than 64
    tokens starts from a head fitted on its first 64, a start, not the served scores."""
    from t2iguard.training.prompt_head import embed_texts, fit_head  # prompt_head imports this module

    x, at = embed_texts(texts, say)
    if len(at) != len(texts):
        raise RuntimeError(f"the embedding cache holds {len(at)} of {len(texts)} training texts after computing")
    say(f"probe: fitting the head on {len(at)} frozen embeddings")
    return fit_head(x, y[at], w[at], seed=seed).state_dict()


def calibrate(scores: np.ndarray, y: np.ndarray, groups: np.ndarray, benign_fpr: float = BENIGN_FPR,
              hard_fpr: float = HARD_FPR, floor: float = 0.5) -> dict[str, float]:
    """Per category: the smallest threshold (at least `floor`, or the category's lower `FLOOR`) at which at most
    `benign_fpr` of the rows not labelled with it among `groups` "benign", and `hard_fpr` among "hard-negative",
    score at or above it. `scores`, `y`: float32 [n, C]; `groups`: str [n]."""
    out = {}
    for j, cat in enumerate(CATEGORIES):
        neg = y[:, j] == 0
        t = min(FLOOR.get(cat, floor), floor)
        for group, fpr in (("benign", benign_fpr), ("hard-negative", hard_fpr)):
            s = scores[neg & (groups == group), j]
            if len(s):
                t = max(t, float(np.quantile(s, 1.0 - fpr)) + 1e-3)
        out[cat] = round(min(t, MAX_THRESHOLD), 3)
    return out


def next_version(version: str, today: datetime.date) -> str:
    """The policy version after `version` ("YYYY.MM.DD-N"): the next N on the same day, else today's -1."""
    stamp = today.strftime("%Y.%m.%d")
    day, _, n = version.partition("-")
    return f"{stamp}-{int(n) + 1}" if day == stamp and n.isdigit() else f"{stamp}-1"


def write_thresholds(thresholds: dict[str, float], policy: Path = DEFAULT_POLICY,
                     today: datetime.date | None = None) -> str:
    """Write calibrated `prompt: {threshold: ...}` values into the policy YAML as a NEW policy version: the
    thresholds set, `version` bumped (`next_version`), comments kept; every later report names the new version.
    Returns the version now in force; thresholds equal to the file's write nothing and keep its version."""
    text = policy.read_text()
    current = load_policy(policy)
    if all(current.categories[c].prompt is not None and current.categories[c].prompt.threshold == t
           for c, t in thresholds.items()):
        return current.version
    for cat, t in thresholds.items():
        pattern = re.compile(rf"(\n  {re.escape(cat)}:[^\n]*\n(?:    .*\n)*?    prompt: \{{threshold: )[0-9.]+")
        text, n = pattern.subn(rf"\g<1>{t}", text)
        if n != 1:
            raise ValueError(f"policy {policy} has no prompt rule for {cat!r}")
    version = next_version(current.version, today or datetime.date.today())
    text, n = re.subn(r'^version: "[^"]*"', f'version: "{version}"', text, count=1, flags=re.M)
    if n != 1:
        raise ValueError(f"policy {policy} has no top-level `version:` line")
    policy.write_text(text)
    return version


# ---------------------------------------------------------------------------------------------------------
# the project's own committed prompts, scored as served (torch)
# ---------------------------------------------------------------------------------------------------------
DATA = Path(__file__).parent / "data"
OWN_SETS = ("test_prompts.tsv", "dev_prompts.tsv", "dev_prompts_2.tsv")


@torch.no_grad()
def served_scores(texts: list[str], path: Path = PROMPT_CLASSIFIER_CHECKPOINT, normalise: bool = True,
                  window: int | None = -1) -> np.ndarray:
    """The committed classifier's scores as the served graph computes them: `normalize` (unless `normalise` is
    False), tokenize at the profile's length, MiniLM, max of the whole prompt's and its windows' head scores
    (`window`: -1 the served `PROMPT_WINDOW`, None the whole prompt only, as served before issue 21)."""
    from t2iguard.contract.profiles import get_profile
    from t2iguard.export.modules import PROMPT_WINDOW, SentenceScorer
    from t2iguard.export.tiny import load_classifier
    from t2iguard.runtime.text import normalize
    from t2iguard.training.embed import score

    model = SentenceScorer(*load_classifier(path), window=PROMPT_WINDOW if window == -1 else window).eval()
    return score(model, [normalize(t) if normalise else t for t in texts], get_profile("tiny").seq_len)


def own_figures(thresholds: dict[str, float], path: Path = PROMPT_CLASSIFIER_CHECKPOINT) -> dict[str, dict]:
    """Per committed prompt file: flagged share per group (benign, over-refusal, unsafe) at `thresholds`."""
    out = {}
    t = np.array([thresholds[c] for c in CATEGORIES])
    for name in OWN_SETS:
        rows = [line.split("\t") for line in (DATA / name).read_text().splitlines()
                if line.strip() and not line.startswith("#")]
        flagged = (served_scores([r[2] for r in rows], path) >= t).any(1)
        groups = np.array([r[0] for r in rows])
        out[name] = {g: [int(flagged[groups == g].sum()), int((groups == g).sum())]
                     for g in ("benign", "over-refusal", "unsafe") if (groups == g).any()}
    return out


#: corpus mode: at most this many training rows per (source, group, weak) cell, sampled with the seed, so that
#: Davidson's 15k coarse "offensive" tweets and T2I-CompBench's 6k captions do not drown the twins
CAP = 2500
WEAK_WEIGHT = 0.25  # rows whose labels come from a coarse mapping (SOURCES.md) count a quarter


@dataclass
class Dataset:
    texts: np.ndarray  # object [N], normalised, as trained on (training rows may be augmented variants)
    y: np.ndarray  # float32 [N, len(CATEGORIES)]
    w: np.ndarray  # float32 [N], per-row loss weight
    split: np.ndarray  # str [N]: train | val | test
    groups: np.ndarray  # str [N]: benign | hard-negative | unsafe
    source: np.ndarray  # str [N]: the unit leave-one-source-out holds out (`corpus.source_of`)
    digest: str  # sha256 (16 hex) of the raw texts, in order
    original: np.ndarray | None = None  # object [N], normalised, before augmentation (what is scored); None: texts
    pair: np.ndarray | None = None  # str [N]: the id a twin shares with its partner, "" for the rest; None: no twins

    def __post_init__(self):
        if self.original is None:
            self.original = self.texts
        if self.pair is None:
            self.pair = np.full(len(self.texts), "")

    @property
    def key(self) -> str:
        """`digest` plus 8 hex of the labels, weights, groups, units and the texts as normalised: what names a cached
        checkpoint or fold, so that a changed label mapping or normaliser (the same raw texts) never resumes or
        reuses one trained or scored on the old ones."""
        h = hashlib.sha256(self.y.tobytes() + self.w.tobytes() + "\n".join(self.groups).encode()
                           + "\n".join(self.source).encode() + "\n".join(self.texts).encode()
                           + "\n".join(self.original).encode())
        return f"{self.digest}-{h.hexdigest()[:8]}"


def templates_dataset(seed: int) -> Dataset:
    """The project's template generator only (the recipe before issue 21)."""
    data = generate(seed, benign=8000, hard=5000)
    return Dataset(np.array([normalize(e.text) for e in data], dtype=object),
                   np.array([e.target for e in data], dtype=np.float32), np.ones(len(data), np.float32),
                   np.array([split_of(e.text) for e in data]), np.array([e.group for e in data]),
                   np.full(len(data), "own-templates"),
                   hashlib.sha256("\n".join(e.text for e in data).encode()).hexdigest()[:16])


def corpus_dataset(seed: int, cap: int = CAP, augment: bool = True, without: tuple[str, ...] = (),
                   templates: dict | None = None) -> Dataset:
    """The corpus (`training.data.corpus.load_corpus`: public sources in the cache, deduplicated against the
    evaluation sets, plus templates, twins and hard negatives); training rows capped per cell (`CAP`), weak rows
    weighted `WEAK_WEIGHT`; validation and test rows all kept. With `augment`, a seeded `augment.SHARE` of the
    public sources' training rows are replaced by an obfuscated, diluted or framed variant
    (`training.data.augment`; the templates carry their own). `without`: sources whose training rows are left
    out (their validation and test rows stay, so a model is calibrated and judged on the same split). `templates`:
    keyword arguments of the template generator (`prompts.generate`), e.g. its benign counterparts."""
    from t2iguard.training.data.corpus import OWN, load_corpus, source_of
    from t2iguard.training.data.sources import load_manifest

    rng = np.random.default_rng(seed)
    cells: dict[tuple, list] = {}
    # "all": texts not yet embedded are embedded first (minutes on a fresh cache), so the near-duplicate check by
    # embedding covers every text; "cached" on a fresh cache would check none of them
    for e in load_corpus(seed=seed, embedding="all", templates=templates):
        if e.split == "train" and e.source in without:
            continue
        cells.setdefault((e.source, e.group, e.weak, e.split), []).append(e)
    data = []
    for (_, _, _, split), rows in sorted(cells.items()):
        if split == "train" and len(rows) > cap:
            rows = [rows[i] for i in sorted(rng.choice(len(rows), cap, replace=False))]
        data += rows
    texts = [e.text for e in data]
    original = np.array([normalize(t) for t in texts], dtype=object)
    normalised = original.copy()
    if augment:
        public = [i for i, e in enumerate(data) if e.split == "train" and e.source not in OWN]
        prompts = {s.id for s in load_manifest() if s.kind == "t2i-prompts"}
        fragments = fragments_of([data[i].text for i in public if data[i].group == "benign"
                                  and data[i].source in prompts])
        arng = random.Random(seed)
        for i in public:
            if arng.random() < SHARE:
                texts[i] = variant(texts[i], fragments, arng)[1]
                normalised[i] = normalize(texts[i])
    return Dataset(normalised,
                   np.array([e.target for e in data], dtype=np.float32),
                   np.array([WEAK_WEIGHT if e.weak else 1.0 for e in data], np.float32),
                   np.array([e.split for e in data]), np.array([e.group for e in data]),
                   np.array([source_of(e) for e in data]),
                   hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16], original,
                   np.array([e.pair for e in data]))


DATASETS = {"templates": templates_dataset, "corpus": corpus_dataset,
            # the corpus without the template generator's training rows: its own writing puts ordinary words only
            # into unsafe prompts (benchmarks/one_sided_phrases.py; the study's 2026-12-07 evening section)
            "corpus-no-templates": partial(corpus_dataset, without=("own-templates",)),
            # ... and with every unsafe template row followed by its benign counterpart (`template_twins`): the same
            # slots and decoration, the harmful element replaced, so the templates' ordinary words are seen benign
            "corpus-template-twins": partial(corpus_dataset, templates={"counterparts": 1.0})}


def train(seed: int = 0, epochs: int = 2, out: Path = PROMPT_CLASSIFIER_CHECKPOINT, policy: Path = DEFAULT_POLICY,
          data: str = "corpus", adapter: str = "qv-r8", max_steps: int | None = None, head_init: str = "random",
          init: Path | None = None, pair_weight: float = 0.0, pair_sides: str = "both", swap_weight: float = 0.0,
          swap_categories: tuple[str, ...] | None = None, say=lambda msg: None) -> TrainResult:
    """Fine-tune on `data` (a `DATASETS` key: "corpus", "corpus-no-templates", "corpus-template-twins" or "templates")
    with `adapter` (`export.tiny.SHIPPABLE`: the shipped LoRA, or the whole encoder fine-tuned and its change cut to a
    low rank, `LOW_RANK`), calibrate on its validation split, write the weights to `out` and the thresholds into
    `policy` as a new version. `max_steps`: stop there (steps of 64 prompts; a leave-one-source-out fold's budget,
    `prompt_loso.STEPS`, for a model comparable to the folds). `head_init` ("random" or "probe", `HEAD_INITS`): "probe"
    fits the head on the frozen encoder first (`probe_head`, LP-FT). `init`: continue from that trained file instead
    (`warm_start`: its adapters, rank and head, at `WARM_LR`; the result keeps its seed, so it can be souped with it).
    Resumable: an interrupted run with the same arguments continues from its checkpoint under the cache
    (`cache_root()/checkpoints`). `pair_weight` > 0 adds that much of the twins' ranking loss (`pair_loss`, over the
    training split's `twin_pairs`, moving `pair_sides`, `PAIR_SIDES`) to every step; `swap_weight` > 0, that much of
    counterfactual logit pairing over its benign rows that name a group (`swap_loss`, `identity_swaps`), over
    `swap_categories` (None: every category)."""
    if swap_categories is not None and (not swap_categories or set(swap_categories) - set(CATEGORIES)):
        raise ValueError(f"swap_categories must be policy categories, not {swap_categories!r}")
    if pair_sides not in PAIR_SIDES:
        raise ValueError(f"pair_sides must be one of {', '.join(PAIR_SIDES)}, not {pair_sides!r}")
    if pair_weight < 0 or swap_weight < 0:
        raise ValueError(f"pair_weight and swap_weight must be >= 0, not {pair_weight}, {swap_weight}")
    if head_init not in HEAD_INITS:  # before minutes of corpus reading; the CLI names it the same way
        raise ValueError(f"head_init must be one of {', '.join(HEAD_INITS)}, not {head_init!r}")
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, not {max_steps}")
    if init is not None and (head_init != "random" or adapter != "qv-r8"):
        raise ValueError("init continues a file's own adapters and head: it takes no head_init or adapter")
    if init is not None and Path(out).resolve() == Path(init).resolve():
        raise ValueError(f"out is the file init continues ({init}): write the continued file elsewhere")
    start = warm_start(init) if init is not None else None
    t0 = time.perf_counter()
    seq_len = get_profile("tiny").seq_len
    ds = DATASETS[data](seed)
    train_mask = ds.split == "train"
    config, encoder_lr = ADAPTERS[adapter]
    if start is not None:
        config, encoder_lr = start.config, WARM_LR
    what = adapter if start is None else f"continuing {init.name}, LoRA r={config['r']}"
    say(f"{len(ds.texts)} prompts ({int(train_mask.sum())} train, data={data}); fine-tuning MiniLM ({what}) + head")
    tag = (("" if adapter == "qv-r8" else f"-{adapter}") + ("" if max_steps is None else f"-n{max_steps}")
           + ("" if head_init == "random" else f"-{head_init}")
           + ("" if start is None else f"-from-{start.file['sha256_16']}")
           + ("" if pair_weight == 0 else f"-pairs{pair_weight:g}" + ("" if pair_sides == "both" else "-benign"))
           + ("" if swap_weight == 0 else f"-swaps{swap_weight:g}")
           + ("" if swap_weight == 0 or swap_categories is None else "-on-" + "+".join(swap_categories)))
    checkpoint = cache_root() / "checkpoints" / f"prompt-classifier-{data}-{ds.key}-s{seed}-e{epochs}{tag}.pt"
    texts, y, w = list(ds.texts[train_mask]), ds.y[train_mask], ds.w[train_mask]
    pairs = twin_pairs(ds.pair[train_mask], ds.groups[train_mask])
    swaps = identity_swaps(texts, ds.groups[train_mask], seed) if swap_weight else []
    if pair_weight or swap_weight:
        say(f"pair loss x{pair_weight:g} over {len(pairs)} twin pairs, swap loss x{swap_weight:g} over "
            f"{len(swaps)} benign rows naming a group")
    # a run resumed from its checkpoint loads the head from there: no probe to fit again
    head_state = probe_head(texts, y, w, seed, say) if head_init == "probe" and not checkpoint.is_file() else None
    if start is not None and not checkpoint.is_file():
        head_state = start.head
    encoder, head = _fit(texts, y, w, seed, epochs, seq_len, say, checkpoint, max_steps=max_steps, adapter=config,
                         encoder_lr=encoder_lr, head_state=head_state,
                         encoder_state=None if start is None else start.adapters,
                         head_lr=LR if start is None else WARM_LR, pairs=pairs, pair_weight=pair_weight,
                         pair_sides=pair_sides, swaps=swaps, swap_weight=swap_weight, swap_categories=swap_categories)
    meta = {"seed": str(seed), "epochs": str(epochs), "hidden": str(HIDDEN), "data": data,
            "examples": str(len(ds.texts))} | ({} if max_steps is None else {"max_steps": str(max_steps)})
    meta |= {} if head_init == "random" else {"head_init": head_init}
    meta |= {} if pair_weight == 0 else {"pair_weight": f"{pair_weight:g}", "pairs": str(len(pairs)),
                                         "pair_sides": pair_sides}
    meta |= {} if swap_weight == 0 else {"swap_weight": f"{swap_weight:g}", "swaps": str(len(swaps)),
                                         "swap_categories": json.dumps(swap_categories or CATEGORIES)}
    if init is not None:  # `seed` is the start's (a soup checks it as the shared start); `run_seed` this run's
        # (the corpus's sampling and augmentation, dropout, batch order)
        meta |= {"seed": start.seed, "run_seed": str(seed), "lr": str(WARM_LR), "init": json.dumps(start.file)}
    if adapter in LOW_RANK:
        change = low_rank_change(encoder, LOW_RANK[adapter])
        encoder = apply_low_rank(load_minilm(), change).eval()
        meta.update(lora="null", low_rank=str(LOW_RANK[adapter]),
                    encoder=f"all-MiniLM-L6-v2 fine-tuned, its change cut to rank {LOW_RANK[adapter]}")
        return save_calibrated(encoder, head, ds, meta, out, policy, t0, encoder_state=change)
    return save_calibrated(encoder, head, ds, {**meta, "lora": json.dumps(config)}, out, policy, t0)


def save_calibrated(encoder: torch.nn.Module, head: torch.nn.Module, ds: Dataset, meta: dict[str, str], out: Path,
                    policy: Path, t0: float, encoder_state: dict[str, torch.Tensor] | None = None) -> TrainResult:
    """Score `ds`'s validation split as served, calibrate (`calibrate`), save the encoder's part (the adapters of
    the unmerged peft `encoder`, or `encoder_state`: a low-rank change, `export.tiny.low_rank_change`) and the head
    as fp16 safetensors with `meta` and the figures on the project's own prompts, and write the thresholds into
    `policy` as a new version."""
    seq_len = get_profile("tiny").seq_len
    val_mask = ds.split == "val"
    val_scores = score(SentenceScorer(encoder, head, window=PROMPT_WINDOW).eval(), list(ds.texts[val_mask]), seq_len)
    thresholds = calibrate(val_scores, ds.y[val_mask], ds.groups[val_mask])
    flagged = (val_scores >= np.array([thresholds[c] for c in CATEGORIES])).any(1)
    unsafe = ds.y[val_mask].sum(1) > 0
    val = {"recall_unsafe": float(flagged[unsafe].mean()),
           "fpr_benign": float(flagged[ds.groups[val_mask] == "benign"].mean()),
           "fpr_hard_negative": float(flagged[ds.groups[val_mask] == "hard-negative"].mean())}
    meta = {"encoder": "all-MiniLM-L6-v2 + LoRA", **meta, "categories": json.dumps(CATEGORIES),
            "data_sha256_16": ds.digest, "val": json.dumps(val), "thresholds": json.dumps(thresholds)}
    if encoder_state is None:
        state = {f"encoder.{k}": v for k, v in encoder.state_dict().items() if "lora_" in k}
    else:
        state = {f"low_rank.{k}": v for k, v in encoder_state.items()}
    state.update({f"head.{k}": v for k, v in head.state_dict().items()})
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}
    save_file(state, str(out), metadata=meta)
    # the project's own committed prompts through the saved (fp16) file, as served: the test reproduces these
    meta["own_figures"] = json.dumps(own_figures(thresholds, out))
    save_file(state, str(out), metadata=meta)
    write_thresholds(thresholds, policy)
    return TrainResult(out, thresholds, val, time.perf_counter() - t0, len(ds.texts))
