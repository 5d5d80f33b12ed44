"""The one taxonomy: the order of every score vector the detectors emit.

Prompt and image classifiers output `float32 [len(CATEGORIES)]` in this order; the transform
classifier outputs `float32 [len(TRANSFORM_CLASSES)]`; the rewrite tagger `float32 [len(REWRITE_TAGS)]`.
The policy file refers to these ids; a policy naming an unknown id is rejected at load.
"""

CATEGORIES: tuple[str, ...] = (
    "sexual",
    "sexual/minors",
    "nudity",
    "violence",
    "violence/graphic",
    "self-harm",
    "hate",
    "harassment",
    "illicit",
    "public-figures",
    "election-misinformation",
    "privacy",
)

#: transform classifier classes for edits (input image + prompt + output image)
TRANSFORM_CLASSES: tuple[str, ...] = ("safe-edit", "unsafe-edit", "unintended-edit")

#: NudeNet detector classes the optional `nude_detector` scores (NUDE_SCORES columns); each counts as `nudity`
NUDE_CLASSES: tuple[str, ...] = ("FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
                                 "BUTTOCKS_EXPOSED", "ANUS_EXPOSED")

#: what the latent guard (classifier guidance) scores: every image category and the two edit harms
GUIDED_CLASSES: tuple[str, ...] = CATEGORIES + TRANSFORM_CLASSES[1:]

#: rewrite tagger sentence outputs: which rewrite a prompt needs
REWRITE_TAGS: tuple[str, ...] = (
    "person-unspecified",  # depicts people without stating gender/ethnicity/age -> diversity
    "private-individual",  # names a private person, address, phone, email -> anonymise
    "sexualisation-risk",  # under-specified prompt prone to unintended sexualisation -> ground
    "negative-group-framing",  # attaches a negative trait to a protected group -> neutralise
)

#: rewrite tagger token outputs (one softmax per token): which words a rewrite touches
TOKEN_LABELS: tuple[str, ...] = ("O", "NAME", "ADDRESS", "CONTACT", "ROLE", "GROUP", "TRAIT")

#: regeneration guidance strengths, weakest first (SLD's named presets; classifier guidance scales alike):
#: the policy's `preset` / `ceiling` fields take these, `t2iguard.runtime.guidance` gives their numbers
GUIDANCE_PRESETS: tuple[str, ...] = ("weak", "medium", "strong", "max")
