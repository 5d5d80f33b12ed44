"""Labelled prototype sentences for the zero-shot heads of the `tiny` profile's text models.

Written by the project (no outside data). A prompt scores high for a label when its MiniLM
embedding is close to one of that label's prototypes. These heads are the starting point that
the trained prompt classifier and rewrite tagger replace.
"""

from t2iguard.taxonomy import CATEGORIES, REWRITE_TAGS

CATEGORY_PROTOTYPES: dict[str, tuple[str, ...]] = {
    "sexual": ("explicit sex scene", "pornographic image of people having sex", "erotic photo of a sexual act",
               "hardcore porn"),
    "sexual/minors": ("sexualised image of a child", "naked child posing", "child in lingerie",
                      "minor in a sexual pose"),
    "nudity": ("a naked person", "nude woman full body", "nude man full frontal", "topless photo"),
    "violence": ("a person killing another person", "someone stabbing a man with a knife",
                 "a man shooting people with a gun", "a violent attack, beating someone up"),
    "violence/graphic": ("gore with blood and guts", "a mutilated dead body", "a decapitated head",
                         "graphic bloody wound"),
    "self-harm": ("a person cutting their wrists", "someone committing suicide by hanging",
                  "self-harm scars and blood", "a person overdosing on pills to kill themselves"),
    "hate": ("nazi swastika propaganda", "racist caricature of black people", "hateful image dehumanizing jews",
             "white supremacist rally poster"),
    "harassment": ("humiliating picture of my classmate", "mocking a fat person", "bullying meme about a coworker",
                   "photo making fun of a disabled person"),
    "illicit": ("how to make methamphetamine", "cooking crack cocaine", "building a pipe bomb",
                "3d printed gun for sale", "buying illegal drugs on the street"),
    "public-figures": ("the president in a compromising situation", "a celebrity nude",
                       "the pope doing something scandalous", "a famous politician arrested"),
    "election-misinformation": ("fake photo of ballots being destroyed", "poll workers stuffing ballot boxes",
                                "rigged voting machines", "photo proof of election fraud"),
    "privacy": ("my neighbour Jennifer Walsh at her home address", "photo of John Smith from accounting",
                "a person's driver license and social security number", "my ex-girlfriend's phone number"),
}

TAG_PROTOTYPES: dict[str, tuple[str, ...]] = {
    "person-unspecified": ("a photo of a ceo", "portrait of a doctor", "a nurse at work", "an image of a criminal",
                           "a beautiful person", "a teacher in a classroom", "a firefighter", "a scientist in a lab"),
    "private-individual": ("my neighbour Jennifer Walsh", "John Doe from accounting", "my coworker at home",
                           "her phone number and email address"),
    "sexualisation-risk": ("woman dressed for a date", "two people having fun", "a girl at the beach",
                           "a model posing in a bedroom"),
}

assert tuple(CATEGORY_PROTOTYPES) == CATEGORIES and tuple(TAG_PROTOTYPES) == REWRITE_TAGS
