"""`t2iguard train prompt-soup`: one prompt classifier from two, by averaging their weights (a model soup).

Two files trained by `t2iguard train prompt-classifier` from the same seed start from the same adapters and head
(`torch.manual_seed(seed)` before both are built), so their weights can be averaged: the soup is still one
MiniLM pass per prompt on the served path. Per adapted layer the soup's update is the weighted mean of the two
updates, written exactly as one adapter of their summed rank:

    delta = (1 - share) * s_a * B_a @ A_a + share * s_b * B_b @ A_b = [(1 - share) s_a B_a, share s_b B_b] @ [A_a; A_b]

(`s` = lora_alpha / r, the soup's own scaling 1: r = lora_alpha = r_a + r_b); the head's parameters are averaged with
the same weights. Where either file carries a low-rank change instead (`--adapter full-r32`: every encoder weight
fine-tuned), the two merged encoders are averaged weight by weight and the soup's change from the pretrained MiniLM is
stored as one low-rank change (`merged_soup_state`; rank r_a + r_b, so the cut is exact). The soup is then calibrated
and saved as training calibrates and saves (`train_prompt_classifier.save_calibrated`: the corpus's validation split,
a new policy version).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from t2iguard.contract.policy import DEFAULT_POLICY
from t2iguard.export.modules import MLPHead
from t2iguard.export.tiny import (
    LORA,
    PROMPT_CLASSIFIER_CHECKPOINT,
    apply_low_rank,
    load_classifier,
    load_minilm,
    lora_encoder,
    low_rank_change,
)
from t2iguard.training.train_prompt_classifier import TrainResult, corpus_dataset, save_calibrated


def _meta(path: Path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return f.metadata()


def _parent(path: Path) -> dict[str, str | None]:
    """What the soup's metadata records of a parent file: its name, sha256 (16 hex) and training data digest."""
    return {"file": path.name, "sha256_16": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
            "data": _meta(path).get("data_sha256_16")}


def _shared_start(a: Path, b: Path, share: float) -> tuple[dict[str, str], dict[str, str]]:
    """The two files' metadata, once `share` is in [0, 1] and they share seed, head width and categories (a shared
    start to soup); ValueError otherwise."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    ma, mb = _meta(a), _meta(b)
    for key in ("seed", "hidden", "categories"):
        if ma.get(key) != mb.get(key):
            raise ValueError(f"{a} and {b} differ in {key} ({ma.get(key)} vs {mb.get(key)}): no shared start to soup")
    return ma, mb


def soup_state(a: Path, b: Path, share: float) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """(adapter state for `lora_encoder(config)`, head state, config): the weighted mean of files `a` and `b`
    (`share`: b's weight, in [0, 1]), float32. Raises ValueError unless both are LoRA files from the same seed,
    head width and adapted modules."""
    ma, mb = _shared_start(a, b, share)
    la, lb = json.loads(ma.get("lora", "null")), json.loads(mb.get("lora", "null"))
    if la is None or lb is None or la["target_modules"] != lb["target_modules"]:
        raise ValueError(f"{a} and {b} must both carry LoRA adapters on the same modules")
    sa, sb = (load_file(str(p)) for p in (a, b))
    if sa.keys() != sb.keys():
        raise ValueError(f"{a} and {b} hold different weights ({sorted(sa.keys() ^ sb.keys())[:3]}): no shared start")
    scale_a, scale_b = la["lora_alpha"] / la["r"], lb["lora_alpha"] / lb["r"]
    adapters, head = {}, {}
    for key, va in sa.items():
        va, vb = va.float(), sb[key].float()
        name = key.split(".", 1)[1]
        if key.startswith("head."):
            head[name] = (1 - share) * va + share * vb
        elif ".lora_A." in key:
            adapters[name] = torch.cat([va, vb], 0)  # [r_a + r_b, in]
        elif ".lora_B." in key:
            adapters[name] = torch.cat([(1 - share) * scale_a * va, share * scale_b * vb], 1)  # [out, r_a + r_b]
        else:
            raise ValueError(f"{a}: unexpected weight {key}")
    rank = la["r"] + lb["r"]
    return adapters, head, {**LORA, **la, "r": rank, "lora_alpha": rank}


def _rank(meta: dict[str, str]) -> int | None:
    """The rank of a file's encoder change: its LoRA adapters' or its low-rank change's (None: a frozen encoder)."""
    lora = json.loads(meta.get("lora", "null"))
    return lora["r"] if lora else int(meta["low_rank"]) if "low_rank" in meta else None


def merged_soup_state(a: Path, b: Path, share: float) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """(low-rank change for `apply_low_rank`, head state, rank): the weighted mean (`share`: b's weight) of the two
    files' merged encoders, as a change from the pretrained MiniLM cut at the sum of their ranks (exact: each
    weight's change is the mean of two changes of those ranks), and of their heads. For files of which either
    carries a low-rank change (`low_rank.*`). Raises ValueError unless both share seed, head width and
    categories."""
    ma, mb = _shared_start(a, b, share)
    ranks = _rank(ma), _rank(mb)
    if None in ranks:
        raise ValueError(f"{a} and {b} must both carry an encoder change (LoRA adapters or a low-rank change)")
    (enc_a, head_a), (enc_b, head_b) = load_classifier(a), load_classifier(b)
    encoder, pb = load_minilm(), dict(enc_b.named_parameters())
    with torch.no_grad():
        for (name, p), (_, qa) in zip(encoder.named_parameters(), enc_a.named_parameters(), strict=True):
            p.copy_((1 - share) * qa + share * pb[name])
    head = {n: ((1 - share) * p + share * q).detach() for (n, p), q in
            zip(head_a.state_dict().items(), head_b.state_dict().values(), strict=True)}
    rank = sum(ranks)
    return low_rank_change(encoder, rank), head, rank


def soup(a: Path, b: Path, share: float = 0.5, out: Path = PROMPT_CLASSIFIER_CHECKPOINT,
         policy: Path = DEFAULT_POLICY, say=lambda msg: None) -> TrainResult:
    """Average files `a` and `b` (`soup_state`: two LoRA files; `merged_soup_state` where either is a low-rank
    file), calibrate on the corpus's validation split (the files' seed), write the soup to `out` and its thresholds
    into `policy` as a new version."""
    t0 = time.perf_counter()
    ma = _meta(a)
    change = None
    if "low_rank" in ma or "low_rank" in _meta(b):
        change, head_state, rank = merged_soup_state(a, b, share)
        encoder = apply_low_rank(load_minilm(), change)
        kind = {"lora": "null", "low_rank": str(rank),
                "encoder": f"all-MiniLM-L6-v2, a soup of two changes, rank {rank}"}
    else:
        adapters, head_state, config = soup_state(a, b, share)
        encoder = lora_encoder(config)
        result = encoder.load_state_dict(adapters, strict=False)
        if result.unexpected_keys or any("lora_" in k for k in result.missing_keys):
            raise ValueError(f"the soup's adapters do not fit MiniLM: "
                             f"{(result.unexpected_keys + result.missing_keys)[:3]}")
        kind = {"lora": json.dumps(config)}
    head = MLPHead(head_state["net.1.weight"].shape[1], int(ma["hidden"]), head_state["net.4.weight"].shape[0])
    head.load_state_dict(head_state)
    say(f"soup of {a.name} and {b.name} (share {share}); scoring the validation split")
    ds = corpus_dataset(int(ma["seed"]))
    meta = {"seed": ma["seed"], "hidden": ma["hidden"], **kind, "data": "corpus", "examples": str(len(ds.texts)),
            "soup": json.dumps({"a": _parent(a), "b": _parent(b), "share": share})}
    return save_calibrated(encoder.eval(), head.eval(), ds, meta, out, policy, t0, encoder_state=change)
