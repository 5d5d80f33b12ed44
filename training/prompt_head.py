"""A prompt-classifier head on the public corpus plus the project's own data, and the leave-one-source-out
harness that judges it (`t2iguard eval prompt-classifier` runs the study). STUDIED, NOT SHIPPED: on the
project's held-out twins it catches 45% of unsafe twins where the shipped LoRA classifier
(`train_prompt_classifier.py`) catches 77% (docs/2026-12-03-prompt-guard-real-data.md), so the served
classifier stays the LoRA one until a model wins on both.

The model: the pretrained all-MiniLM-L6-v2 encoder, frozen (masked-mean pooled, as `SentenceScorer` pools), an
MLP head trained on the corpus of `training.data.corpus` (`load_corpus`: public T2I prompts, unsafe-prompt
collections, toxic-text corpora, the project's templates, counterfactual twins and hard negatives; eval-set
near-duplicates dropped; the weakly labelled rows weighted `WEAK_WEIGHT`), fused half and half with an exemplar
bank (`Bank`: 768 labelled corpus embeddings; a softmax over cosine similarities: one matmul inside the served
graph, `export.modules.ExemplarFusion`). Because the encoder is frozen, everything trains on the cached
embeddings (`EmbeddingCache`, unit-normalised; the head's LayerNorm makes the scale irrelevant and the bank
normalises, so the served graph, which pools without normalising, computes the same scores): a fit takes
seconds, so the model is chosen on the **leave-one-source-out** figures (train without one source, measure on
it), not on the in-distribution ones. Committed: the head and the bank (safetensors, fp16, under 1 MB). The
study behind the choice: `docs/2026-12-03-prompt-guard-real-data.md`.

Steps of `train_head`: the corpus embeddings; LOSO out-of-source scores (one head per held-out source); per-category
thresholds calibrated on those out-of-source scores (the held-out SOURCES, never the evaluation sets); the final
head on the training split of every source; the figures on the project's own committed prompts
(`training/data/test_prompts.tsv`, scored through the torch model as served) recorded in the file's metadata;
the thresholds written into the policy as a new version.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.export.modules import MLPHead
from t2iguard.training.train_prompt_classifier import (  # the same operating point, the same served scoring
    calibrate,
    own_figures,
    write_thresholds,
)

HIDDEN = 256
SEED = 0
EPOCHS = 4
BATCH = 512
#: weight of the weakly labelled rows (Davidson "offensive" read as harassment; image-derived ErasureBench labels)
WEAK_WEIGHT = 0.25
#: thresholds: `train_prompt_classifier.calibrate`'s operating point, applied to out-of-source (LOSO) scores


@dataclass
class Embedded:
    """The corpus examples that have a cached embedding, as arrays (row i of every field is one example)."""
    examples: list
    x: np.ndarray  # float32 [N, 384], unit norm
    y: np.ndarray  # float32 [N, C]
    group: np.ndarray  # benign | hard-negative | unsafe
    source: np.ndarray  # repository ("owner/name") or own-data id: the unit LOSO holds out
    split: np.ndarray  # train | val | test
    weak: np.ndarray  # bool
    missing: int  # corpus examples without a cached embedding (left out)

    def take(self, mask: np.ndarray) -> Embedded:
        idx = np.flatnonzero(mask)
        return Embedded([self.examples[i] for i in idx], self.x[idx], self.y[idx], self.group[idx],
                        self.source[idx], self.split[idx], self.weak[idx], 0)


def embedded_corpus(seed: int = SEED, say=lambda msg: None) -> Embedded:
    """The corpus (`embedding="all"`: every text embedded, eval near-duplicates dropped) with its MiniLM
    embeddings."""
    from t2iguard.training.data.corpus import EmbeddingCache, corpus, source_of

    examples = corpus(seed=seed, embedding="all", say=say).examples
    vectors, where = EmbeddingCache().get([e.text for e in examples])
    kept = [examples[i] for i in where]
    say(f"{len(kept)}/{len(examples)} corpus examples have a cached embedding")
    return Embedded(kept, vectors, np.array([e.target for e in kept], np.float32), np.array([e.group for e in kept]),
                    np.array([source_of(e) for e in kept]), np.array([e.split for e in kept]),
                    np.array([e.weak for e in kept]), len(examples) - len(kept))


def embed_texts(texts: list[str], say=lambda msg: None) -> tuple[np.ndarray, np.ndarray]:
    """(vectors of the texts the embedding cache holds, their positions); computes the missing ones (CPU)."""
    from t2iguard.training.data.corpus import EmbeddingCache

    cache = EmbeddingCache()
    if cache.missing(texts):
        say(f"embedding {len(cache.missing(texts))} texts")
        cache.compute(texts)
    return cache.get(texts)


# ---------------------------------------------------------------------------------------------------------
# models over the frozen embeddings
# ---------------------------------------------------------------------------------------------------------
def sample_weights(data: Embedded, weak_weight: float = WEAK_WEIGHT) -> np.ndarray:
    return np.where(data.weak, weak_weight, 1.0).astype(np.float32)


def fit_head(x: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int = SEED, epochs: int = EPOCHS,
             hidden: int = HIDDEN) -> MLPHead:
    """An MLP head on frozen embeddings: weighted binary cross-entropy, AdamW with a one-cycle schedule,
    minibatches of `BATCH`; one thread (a small model on a shared machine: more threads only wait)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        head = MLPHead(x.shape[1], hidden, y.shape[1], dropout=0.2)
        opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=0.01)
        xt, yt, wt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(w)
        gen = torch.Generator().manual_seed(seed)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * -(-len(x) // BATCH))
        head.train()
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), BATCH):
                idx = perm[i:i + BATCH]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(head.logits(xt[idx]), yt[idx],
                                                                            reduction="none")
                loss = (loss.mean(1) * wt[idx]).sum() / wt[idx].sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        return head.eval()
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def head_scores(head: MLPHead, x: np.ndarray) -> np.ndarray:
    return head(torch.from_numpy(x)).numpy()


@dataclass
class Bank:
    """An exemplar bank: labelled unit vectors; a prompt's score per category is the label mean of its
    neighbours, softmax-weighted by cosine similarity (`temperature`): a matmul and a softmax, so it could live
    inside the exported graph."""
    vectors: np.ndarray  # float32 [M, D]
    labels: np.ndarray  # float32 [M, C]
    temperature: float = 0.03

    @classmethod
    def sample(cls, data: Embedded, size: int = 768, seed: int = SEED) -> Bank:
        """Up to `size` exemplars, stratified over (group, first label) so that rare categories are present."""
        rng = np.random.default_rng(seed)
        strata = [f"{g}:{int(np.argmax(y)) if y.any() else -1}" for g, y in zip(data.group, data.y, strict=True)]
        keys = sorted(set(strata))
        per = max(1, size // len(keys))
        idx = []
        arr = np.array(strata)
        for k in keys:
            members = np.flatnonzero(arr == k)
            idx += list(rng.choice(members, min(per, len(members)), replace=False))
        idx = np.array(sorted(idx))
        return cls(data.x[idx], data.y[idx])

    def scores(self, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
        out = []
        for i in range(0, len(x), chunk):
            sims = x[i:i + chunk] @ self.vectors.T / self.temperature
            sims -= sims.max(1, keepdims=True)
            p = np.exp(sims)
            p /= p.sum(1, keepdims=True)
            out.append(p @ self.labels)
        return np.concatenate(out) if out else np.zeros((0, self.labels.shape[1]), np.float32)


@dataclass(frozen=True)
class Variant:
    """One candidate model, trained the same way for the LOSO table and for shipping."""
    name: str
    weak_weight: float = 1.0
    bank: float = 0.0  # weight of the exemplar bank in the fused score (0: head only)

    def fit(self, data: Embedded, seed: int = SEED):
        head = fit_head(data.x, data.y, sample_weights(data, self.weak_weight), seed)
        bank = Bank.sample(data, seed=seed) if self.bank else None
        return head, bank

    def score(self, model, x: np.ndarray) -> np.ndarray:
        head, bank = model
        s = head_scores(head, x)
        return s if bank is None else (1 - self.bank) * s + self.bank * bank.scores(x)


VARIANTS = {
    "a": Variant("(a) frozen MiniLM + MLP head"),
    "b": Variant("(b) (a), weak rows weighted 0.25", weak_weight=WEAK_WEIGHT),
    "c": Variant("(c) (b) fused with an exemplar bank (768, 0.5/0.5)", weak_weight=WEAK_WEIGHT, bank=0.5),
}
#: the shipped model (chosen on the LOSO figures: docs/2026-12-03-prompt-guard-real-data.md)
SHIPPED = "c"


def loso_scores(data: Embedded, variant: Variant | list[Variant], seed: int = SEED,
                say=lambda msg: None) -> np.ndarray | list[np.ndarray]:
    """Out-of-source scores: every example scored by a model trained without its source (all splits of the
    other sources). Several variants share their heads where they train the same one."""
    many = isinstance(variant, list)
    variants = variant if many else [variant]
    outs = [np.zeros_like(data.y) for _ in variants]
    for src in sorted(set(data.source)):
        held = data.source == src
        t0 = time.perf_counter()
        rest = data.take(~held)
        heads: dict[float, MLPHead] = {}
        for v, out in zip(variants, outs, strict=True):
            if v.weak_weight not in heads:
                heads[v.weak_weight] = fit_head(rest.x, rest.y, sample_weights(rest, v.weak_weight), seed)
            bank = Bank.sample(rest, seed=seed) if v.bank else None
            out[held] = v.score((heads[v.weak_weight], bank), data.x[held])
        say(f"  LOSO: without {src} ({int(held.sum())}) {time.perf_counter() - t0:.0f}s")
    return outs if many else outs[0]


# ---------------------------------------------------------------------------------------------------------
# calibration and the policy
# ---------------------------------------------------------------------------------------------------------



@dataclass
class TrainResult:
    weights: Path
    thresholds: dict[str, float]
    figures: dict
    seconds: float
    examples: int
    policy_version: str


def train_head(out: Path, seed: int = SEED, variant: str = SHIPPED, policy: Path | None = None,
               say=lambda msg: None) -> TrainResult:
    """Calibrate on LOSO scores, fit the final head on the training split, save it to `out` and, given a
    `policy` file, write the thresholds into it as a new version."""
    t0 = time.perf_counter()
    v = VARIANTS[variant]
    data = embedded_corpus(seed, say)
    say(f"{len(data.examples)} examples; leave-one-source-out scores for calibration")
    oos = loso_scores(data, v, seed, say)
    thresholds = calibrate(oos, data.y, data.group)
    train_part = data.take(data.split == "train")
    say(f"final head on {len(train_part.examples)} training examples")
    head = fit_head(train_part.x, train_part.y, sample_weights(train_part, v.weak_weight), seed)
    bank = Bank.sample(train_part, seed=seed) if v.bank else None
    digest = hashlib.sha256("\n".join(e.text for e in train_part.examples).encode()).hexdigest()[:16]
    meta = {"seed": str(seed), "epochs": str(EPOCHS), "hidden": str(HIDDEN), "variant": v.name,
            "weak_weight": str(v.weak_weight), "categories": json.dumps(CATEGORIES), "data_sha256_16": digest,
            "examples": str(len(train_part.examples)), "encoder": "all-MiniLM-L6-v2 (frozen)",
            "thresholds": json.dumps(thresholds)}
    state = {f"head.{k}": v_.detach().to(torch.float16).contiguous() for k, v_ in head.state_dict().items()}
    if bank is not None:
        state["bank.vectors"] = torch.from_numpy(bank.vectors).to(torch.float16).contiguous()
        state["bank.labels"] = torch.from_numpy(bank.labels).to(torch.float16).contiguous()
        meta.update(bank_weight=str(v.bank), bank_temperature=str(bank.temperature), bank_size=str(len(bank.vectors)))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata=meta)
    figures = own_figures(thresholds, out)  # through the saved (fp16) file, as the test reloads it
    meta["own_figures"] = json.dumps(figures)
    save_file(state, str(out), metadata=meta)
    version = write_thresholds(thresholds, policy) if policy is not None else ""
    return TrainResult(out, thresholds, figures, time.perf_counter() - t0, len(train_part.examples), version)
