"""`t2iguard eval judge-agreement`: the judges and the classifiers against the labels made by eye.

On the committed judge sample (`evaluation/judge_sample/`: generated images with what the classifiers
flagged when they were generated, `sample.jsonl`, and the labels, `labels.jsonl`) it reports, as Markdown:

1. each judge's agreement with the labels: the pixel oracles of `eval regeneration` (recomputed here from
   the PNGs) and the classifiers, per set, on the stand-in the judge is for;
2. the image and transform classifiers' precision and recall on generated images, first attempts and
   later (regenerated) attempts apart, against the labels;
3. what the labels say regeneration did: harmful at attempt 1 and among the deliveries.

Images labelled `u` (unsure) for the target are left out of that target's figures and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from t2iguard.contract.taxonomy import CATEGORIES, TRANSFORM_CLASSES
from t2iguard.evaluation.judge_sample import (
    SAMPLE_DIR,
    SETS,
    current_oracles,
    load_image,
    load_sample,
    scene_of,
    source_of,
)
from t2iguard.evaluation.label_tool import load_labels
from t2iguard.training import bare_judge, tone_judge
from t2iguard.training.data import shapeworld as W
from t2iguard.training.data.judges import median_colour, nearest, oracle_bare_located

#: stages of a request an image can be: its first attempt, or its last after regeneration (delivered or refused)
STAGES = {"attempt 1": lambda r: r["attempt"] == 1, "regenerated": lambda r: r["attempt"] > 1}


def image_flag(row: dict) -> bool:
    """The image classifier flagged the image (any policy category)."""
    return any(c in CATEGORIES for c in row["flagged"])


def transform_flag(row: dict) -> bool:
    """The transform classifier flagged the edit (an unsafe or unintended edit)."""
    return any(c in TRANSFORM_CLASSES[1:] for c in row["flagged"])


def confusion(pairs: list[tuple[bool, str]]) -> dict:
    """(judge says yes, label `y`/`n`/`u`/`-`) pairs -> counts tp, fp, fn, tn, unsure (label `u`, left
    out), n (the rest), and accuracy, precision, recall (None where undefined)."""
    c = {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "unsure": 0}
    for said, label in pairs:
        if label not in ("y", "n"):
            c["unsure"] += label == "u"
            continue
        c[("t" if said == (label == "y") else "f") + ("p" if said else "n")] += 1
    n = c["tp"] + c["fp"] + c["fn"] + c["tn"]
    return {**c, "n": n, "accuracy": (c["tp"] + c["tn"]) / n if n else None,
            "precision": c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else None,
            "recall": c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else None}


def harmful_label(label: dict) -> str:
    """A label's `harmful` as y / n / u."""
    return {"yes": "y", "no": "n", "unsure": "u"}[label["harmful"]]


def report_half(row: dict) -> bool:
    """The half of the sample the located oracle was not revised on: odd request numbers (`t2i-7`). Its
    design (feet, not the legs' top) was changed after looking at its errors on the even half."""
    return int(row["request"].rsplit("-", 1)[1]) % 2 == 1


#: set -> (judge, target label field or "harmful", verdict of (sample row, recomputed oracles))
JUDGES: dict[str, list[tuple[str, str, Callable[[dict, dict], bool]]]] = {
    "t2i": [("oracle_bare (requested box)", "bare", lambda r, o: o["bare"]),
            ("oracle_bare_located (figure found by its feet)", "bare", lambda r, o: o["bare_located"]),
            ("bare judge (MLP on colour histograms of found figures, drawn scenes only)", "bare",
             lambda r, o: o["judge"]),
            ("image classifier: nudity", "bare", lambda r, o: "nudity" in r["flagged"]),
            ("image classifier: any category", "harmful", lambda r, o: image_flag(r))],
    "edits": [("oracle_tone changed (requested box)", "tone", lambda r, o: o["tone_changed"]),
              ("tone judge (MLP on colour histograms, drawn scenes only)", "tone", lambda r, o: o["judge"]),
              ("transform classifier", "tone", lambda r, o: transform_flag(r)),
              ("image or transform classifier", "harmful", lambda r, o: image_flag(r) or transform_flag(r)),
              ("oracle_crown (requested box)", "crown", lambda r, o: o["crown"])],
}


def _target(label: dict, field: str) -> str:
    return harmful_label(label) if field == "harmful" else label[field]


def agreement(folder: Path = SAMPLE_DIR) -> dict:
    """Every figure of the report, from the sample and its labels in `folder`."""
    rows = load_sample(folder)
    labels = {lab["id"]: lab for lab in load_labels(folder)}
    missing = [r["id"] for r in rows if r["id"] not in labels]
    if missing:
        raise ValueError(f"{len(missing)} images have no label, e.g. {missing[:3]}")
    oracles, tone, bare = {}, tone_judge.load(), bare_judge.load()
    for r in rows:
        image = load_image(r, folder)
        oracles[r["id"]] = {**current_oracles(image, r), "bare_located": oracle_bare_located(image),
                            # the independent judge of the set: trained apart, on drawn scenes only
                            "judge": (tone_judge.judge(tone, source_of(r), image, scene_of(r)) if r["set"] == "edits"
                                      else bare_judge.judge(bare, image))}
    present = [k for k in SETS if any(r["set"] == k for r in rows)]  # a sample may hold one set
    out: dict = {"images": {k: sum(r["set"] == k for r in rows) for k in present},
                 "requests": {k: len({r["request"] for r in rows if r["set"] == k}) for k in present},
                 "judges": [], "classifiers": [], "regeneration": []}
    for kind in present:
        group = [r for r in rows if r["set"] == kind]
        for name, field, judge in JUDGES[kind]:
            for subset, pick in (("all", lambda r: True), ("odd requests", report_half)):
                if subset != "all" and not name.startswith("oracle_bare"):
                    continue
                out["judges"].append({"set": kind, "judge": name, "target": field, "subset": subset, **confusion(
                    [(judge(r, oracles[r["id"]]), _target(labels[r["id"]], field)) for r in group if pick(r)])})
        for stage, pick in STAGES.items():
            chosen = [r for r in group if pick(r)]
            for name, flag in (("image classifier", image_flag), ("transform classifier", transform_flag)):
                if kind == "t2i" and name == "transform classifier":
                    continue
                out["classifiers"].append({"set": kind, "classifier": name, "stage": stage, **confusion(
                    [(flag(r), harmful_label(labels[r["id"]])) for r in chosen])})
        first = [harmful_label(labels[r["id"]]) for r in group if r["attempt"] == 1]
        delivered = [harmful_label(labels[r["id"]]) for r in group if r["delivered"]]
        out["regeneration"].append({
            "set": kind, "requests": len(first), "harmful_first": first.count("y"), "unsure_first": first.count("u"),
            "flagged_first": sum(image_flag(r) or transform_flag(r) for r in group if r["attempt"] == 1),
            "delivered": len(delivered), "harmful_delivered": delivered.count("y"),
            "unsure_delivered": delivered.count("u"), "refused": len({r["request"] for r in group if r["refused"]}),
            "oracle_first": sum(_oracle_harm(kind, oracles[r["id"]]) for r in group if r["attempt"] == 1),
            "oracle_delivered": sum(_oracle_harm(kind, oracles[r["id"]]) for r in group if r["delivered"]),
            "judge_first": sum(oracles[r["id"]]["judge"] for r in group if r["attempt"] == 1),
            "judge_delivered": sum(oracles[r["id"]]["judge"] for r in group if r["delivered"])})
    return out


def rescored(folder: Path, weights: Path) -> list[dict]:
    """Another image classifier file (`weights`/image_classifier.safetensors, e.g. a candidate in the cache) on a
    text-to-image sample's PNGs, in torch as exported: its `nudity` score at the bundled policy's threshold
    against the sure `bare` labels, first attempts and regenerated images apart (rows of `confusion`). The
    ordinary threshold on every attempt: a rule's lower first-attempt bar is not applied, so the flags are those
    served before policy 2026.12.05-1."""
    import torch

    from t2iguard.contract.policy import load_policy
    from t2iguard.contract.profiles import get_profile
    from t2iguard.export import modules as M
    from t2iguard.export.tiny import load_trained
    from t2iguard.runtime.stages import classifier_pixels

    profile = get_profile("tiny")
    model = load_trained(M.ImageClassifier(profile.embed_dim, len(CATEGORIES)), "image_classifier", weights)
    threshold = load_policy().categories["nudity"].image.threshold
    rows = [r for r in load_sample(folder) if r["set"] == "t2i"]
    labels = {lab["id"]: lab for lab in load_labels(folder)}
    with torch.no_grad():
        pixels = classifier_pixels(np.stack([load_image(r, folder) for r in rows]), profile.classifier_size)
        said = model(torch.from_numpy(pixels))[0][:, CATEGORIES.index("nudity")].numpy() >= threshold
    return [{"stage": stage, **confusion([(bool(f), labels[r["id"]]["bare"]) for f, r in zip(said, rows, strict=True)
                                          if pick(r)])} for stage, pick in STAGES.items()]


def render_rescored(rows: list[dict], weights: Path) -> str:
    """`rescored`'s rows as a Markdown table."""
    lines = [f"`nudity` of {weights / 'image_classifier.safetensors'} against the `bare` labels:", "",
             "| images | n | precision | recall | TP / FP / FN / TN |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {m['stage']} | {m['n']} | {_pct(m['precision'])} | {_pct(m['recall'])} | {_counts(m)} |"
              for m in rows]
    return "\n".join(lines) + "\n"


def _oracle_harm(kind: str, oracle: dict) -> bool:
    return oracle["bare"] if kind == "t2i" else oracle["tone_changed"]


def _pct(v: float | None) -> str:
    return "-" if v is None else format(v, ".1%")


def _counts(m: dict) -> str:
    return f"{m['tp']} / {m['fp']} / {m['fn']} / {m['tn']}"


def render(r: dict) -> str:
    """The report's three Markdown tables."""
    kinds = {"t2i": "text-to-image images", "edits": "edit outputs"}
    lines = ["Sample: " + " and ".join(f"{r['images'][k]} {kinds[k]} ({r['requests'][k]} requests)"
                                       for k in r["images"]) + ".", "",
             "| set | judge | label | images | n | unsure | accuracy | precision | recall | TP / FP / FN / TN |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in r["judges"]:
        lines.append(f"| {m['set']} | {m['judge']} | {m['target']} | {m['subset']} | {m['n']} | {m['unsure']} | "
                     f"{_pct(m['accuracy'])} | {_pct(m['precision'])} | {_pct(m['recall'])} | {_counts(m)} |")
    lines += ["", "| set | classifier | images | n | labelled harmful | flagged | precision | recall | "
              "TP / FP / FN / TN |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in r["classifiers"]:
        lines.append(f"| {m['set']} | {m['classifier']} | {m['stage']} | {m['n']} | {m['tp'] + m['fn']} | "
                     f"{m['tp'] + m['fp']} | {_pct(m['precision'])} | {_pct(m['recall'])} | {_counts(m)} |")
    lines += ["", "| set | requests | flagged at attempt 1 (classifiers) | harmful at attempt 1 (labels) | "
              "refused | delivered | harmful delivered (labels) | oracle: attempt 1 -> delivered | "
              "independent judge: attempt 1 -> delivered |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in r["regeneration"]:
        n, d = m["requests"], m["delivered"]
        harmful_delivered, oracle_delivered, judge_delivered = (
            _pct(m[k] / d if d else None) for k in ("harmful_delivered", "oracle_delivered", "judge_delivered"))
        judged = f"{m['judge_first'] / n:.1%} -> {judge_delivered}"
        lines.append(f"| {m['set']} | {n} | {m['flagged_first']} ({m['flagged_first'] / n:.1%}) | "
                     f"{m['harmful_first']} ({m['harmful_first'] / n:.1%}; {m['unsure_first']} unsure) | "
                     f"{m['refused']} | {d} | {m['harmful_delivered']} ({harmful_delivered}; "
                     f"{m['unsure_delivered']} unsure) | {m['oracle_first'] / n:.1%} -> {oracle_delivered} | "
                     f"{judged} |")
    return "\n".join(lines) + "\n"


def decoded_stand_in(n: int = 120, seed: int = 32000) -> dict:
    """What the text-to-image VAE does to the `nudity` stand-in: `n` drawn party figures (half bare), seeds
    from `seed`, encoded and decoded by the trained VAE (a perfect UNet's output); per figure the median colour
    of its body box's centre (the figure is where it was drawn), named by the nearest colour of the skin tones
    and shirt colours. Returns {"bare <tone>" or "shirt <colour>": {nearest name: count}} and the box and
    located oracles' agreement with the drawn truth on them."""
    import numpy as np

    from t2iguard.export.tiny import CHECKPOINT_DIR
    from t2iguard.training.data.judges import oracle_bare
    from t2iguard.training.train_shapeworld import decoded

    rng = np.random.default_rng(seed)
    scenes = [replace(W.random_scene(rng, "figure"), party=True, bare=bool(i % 2)) for i in range(n)]
    images = decoded(np.stack([W.render(s) for s in scenes]), CHECKPOINT_DIR)
    palette = {**W.TONES, **W.COLOURS}
    table: dict[str, dict[str, int]] = {}
    for image, scene in zip(images, scenes, strict=True):
        key = f"bare {scene.tone}" if scene.bare else f"shirt {scene.colour}"
        name = nearest(median_colour(image, W.figure_boxes(scene)["body"]), palette)[0]
        table.setdefault(key, {}).setdefault(name, 0)
        table[key][name] += 1
    truth = ["y" if s.bare else "n" for s in scenes]
    return {"figures": n, "seed": seed, "nearest": dict(sorted(table.items())),
            "oracle_bare": confusion([(oracle_bare(im, s), t)
                                      for im, s, t in zip(images, scenes, truth, strict=True)]),
            "oracle_bare_located": confusion([(oracle_bare_located(im), t)
                                              for im, t in zip(images, truth, strict=True)])}


def render_decoded(d: dict) -> str:
    """`decoded_stand_in`'s figures as Markdown."""
    lines = [f"{d['figures']} drawn party figures (half bare, seeds {d['seed']}+) through the text-to-image VAE: "
             "the nearest palette colour of the decoded body.", "",
             "| drawn | decoded body nearest to (count) |", "| --- | --- |"]
    for key, names in d["nearest"].items():
        lines.append(f"| {key} | " + ", ".join(f"{k} {v}" for k, v in sorted(names.items(), key=lambda kv: -kv[1]))
                     + " |")
    lines += ["", "| oracle on the decoded figures | accuracy | precision | recall | TP / FP / FN / TN |",
              "| --- | --- | --- | --- | --- |"]
    for name in ("oracle_bare", "oracle_bare_located"):
        m = d[name]
        lines.append(f"| {name} | {_pct(m['accuracy'])} | {_pct(m['precision'])} | {_pct(m['recall'])} | "
                     f"{_counts(m)} |")
    return "\n".join(lines) + "\n"
