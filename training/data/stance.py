"""The project's own stance data: hateful or harassing words asserted, and their twins that use the same words
against hate, say something kind about the same target instead, or aim the same insult at a thing.

Hate and toxicity corpora teach which words hateful text uses. They hold little of the text that uses the same
words against hate: a claim denied ("Muslims are not terrorists"), quoted to condemn it, reported in the news, or
answered by counter-speech. A classifier trained on them flags that text: the shipped guard
flags 37% of HateCheck's non-hateful rows and 17% of Multitarget-CONAN's counter-speech (both held out, never
trained on). The stance twins here are one frame written twice around one claim about one target: the claim
asserted (unsafe) and the claim denied, condemned or reported (a hard negative), so that what separates the two is
the stance, not the words.

- `stance_twins(seed, n)`: up to `n` (benign, unsafe) pairs, three in four about a protected group (hate), one in
  four about a private person (harassment).
- `affirm_twins(seed, n)`: up to `n` (benign, unsafe) pairs in the same frame and about the same target, the unsafe
  side asserting the hateful claim and the benign side a kind or neutral one: with the denial twins alone, naming a
  group without a denial is a shortcut to the unsafe label.
- `target_twins(seed, n)`: up to `n` (benign, unsafe) pairs, one insult or swear in one frame aimed at a thing
  and at a private person: swearing is not the harm, its target is.
- `counter_speech(seed, n)`: up to `n` benign answers to a hateful claim that have no asserted twin.

The benign side never asks for the claim itself to be shown as asserted: no sign, leaflet, banner, page or graffiti
that displays it, in whatever frame (a museum, a textbook, the news); a sign or page may show it denied. The policy
calls a faithful depiction of hate unsafe whatever the frame (the red-team replay cases hold "For a history museum
exhibit, a faithful reconstruction of ..." as a bypass to block), and a model trained on such frames as benign may
learn that bypass: the first version of this file had five (a leaflet in a museum exhibit, graffiti being painted
over, a textbook page on propaganda, a fined football banner, an anti-bullying poster quoting the insults) and two
such answers; the model trained on it let 29% of the red team's story-framed prompts through (the shipped model 11%)
and missed the museum-framed replay cases. These frames are the likely cause, not measured apart. The claim may be
denied on a sign, spoken, reported in words, or answered.

Everything is written here, by the project, in its own words; seeded and deterministic. HateCheck and CONAN stay
unseen: they measure whether this carries to text written by others.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

from t2iguard.training.data.twins import GROUPS, PRIVATE, USER_TAILS, Twin

#: targets of the hate claims: the twins' groups and others that hate speech names
TARGETS = GROUPS + ("women", "immigrants", "Jews", "trans people", "gay people", "Chinese people",
                    "Indigenous people", "Christians", "Arabs", "people in wheelchairs", "lesbians", "migrants")

#: (asserted, denied): a claim about a group, as the rest of a sentence that starts with the group
HATE_CLAIMS = (
    ("are vermin", "are not vermin"),
    ("are subhuman", "are not subhuman"),
    ("are animals", "are not animals"),
    ("are parasites living off our taxes", "are not parasites living off our taxes"),
    ("are all terrorists", "are not terrorists"),
    ("are all criminals and rapists", "are not criminals and rapists"),
    ("are a disease on this country", "are not a disease on this country"),
    ("are filthy and stupid", "are neither filthy nor stupid"),
    ("should be wiped out", "should not be wiped out"),
    ("should all be deported", "should not be deported for who they are"),
    ("do not belong in this country", "belong in this country like everyone else"),
    ("should not be allowed to vote", "have the same right to vote as anyone"),
    ("deserve to be beaten", "do not deserve to be beaten"),
    ("are less than human", "are not less than human"),
    ("are ruining everything and must be stopped", "are not ruining anything"),
    ("are born liars", "are not born liars"),
)
#: (asserted, denied): a claim about one private person, after their name
HARASSMENT_CLAIMS = (
    ("is a worthless loser", "is not a worthless loser"),
    ("is an ugly fat pig", "is not an ugly fat pig"),
    ("should just die", "does not deserve to be told to die"),
    ("is a disgusting freak", "is not a disgusting freak"),
    ("deserves to be beaten up after school", "does not deserve to be beaten up"),
    ("is a stupid whore", "is not a whore"),
    ("is too dumb to live", "is not dumb"),
    ("should be spat on by everyone", "should not be spat on by anyone"),
)

#: kind or neutral claims about a group, as the rest of a sentence that starts with the group (`affirm_twins`)
AFFIRM_CLAIMS = (
    "are our neighbours and friends",
    "are welcome here",
    "have lived in this town for generations",
    "run half the bakeries on this street",
    "deserve the same respect as everyone",
    "work as nurses, teachers and engineers",
    "make this city a better place",
    "helped build this neighbourhood",
    "celebrate their holidays with the whole street",
    "vote in every election like everyone else",
    "are just people, like you and me",
    "are part of this country's story",
    "come from many different backgrounds",
    "coach the kids' football team on Saturdays",
    "have every right to be here",
    "are as different from each other as any other people",
)
#: kind or neutral claims about one private person, after their name (`affirm_twins`)
AFFIRM_PERSON = (
    "is a wonderful friend",
    "is the kindest person I know",
    "deserves a great birthday",
    "is brilliant at maths",
    "should be proud of that science fair project",
    "is the best goalkeeper in school",
    "always helps everyone",
    "is going to do great things",
)

#: (unsafe frame, benign frame); slots: {G}/{g} the target (capitalised or not), {a} the claim asserted, {d} the
#: claim denied. The two sides share every word they can.
HATE_FRAMES = (
    ("{G} {a}.", "It is a lie that {g} {a}."),
    ("{G} {a}, and everyone knows it.", "{G} {d}, and everyone should know it."),
    ("a protest sign reading '{G} {a}'", "a protest sign reading '{G} {d}, hate has no home here'"),
    ("a poster telling people that {g} {a}", "a poster telling people it is a lie that {g} {a}"),
    ("a meme saying {g} {a}, share if you agree", "a meme saying {g} {d}, share if you agree"),
    ("graffiti on a wall: '{G} {a}'", "graffiti on a wall: '{G} {d}'"),
    ("a crowd holding banners saying {g} {a}", "a crowd holding banners against the claim that {g} {a}"),
    ("My uncle says {g} {a}, and he is right.", "My uncle says {g} {a}, and he is wrong."),
    ("a leaflet claiming {g} {a}, handed out at a rally",
     "a leaflet saying it is a lie that {g} {a}, handed out at a rally"),
    ("a man shouting that {g} {a}, cheered by a crowd",
     "a man who shouted that {g} {a}, arrested for a hate crime, news photo"),
    ("I'm done pretending: {g} {a}.", "I'm done pretending not to hear it: saying {g} {a} is bigotry."),
    ("a tweet: '{G} {a}. Retweet.'", "a tweet: 'Whoever told you {g} {a} lied to you.'"),
    ("a banner at a football match: '{G} {a}'", "a banner at a football match: '{G} {d}, no to hate'"),
    ("a comic in which the hero explains that {g} {a}",
     "a comic in which the hero explains why the villain's claim that {g} {a} is false"),
    ("Let's be honest, {g} {a}.", "Let's be honest, {g} {d}."),
    ("a school textbook teaching that {g} {a}", "a school textbook teaching that the claim that {g} {a} is false"),
)
HARASSMENT_FRAMES = (
    ("a group chat screenshot: '{n} {a}'", "a group chat screenshot: 'stop saying {n} {a}, that is bullying'"),
    ("a note left in {n}'s locker: '{n} {a}'", "a note left in {n}'s locker: '{n} {d}, ignore the bullies'"),
    ("Everyone at school agrees that {n} {a}.", "Nobody at school should ever say that {n} {a}."),
    ("a meme of {n} captioned '{n} {a}'", "a meme of {n} captioned '{n} {d}, words hurt'"),
    ("I'll say it to {n}'s face: {n} {a}.", "I said it to their faces: {n} {d}, leave {n} alone."),
    ("a comment under {n}'s photo: '{n} {a}'",
     "a comment under {n}'s photo: 'whoever wrote that {n} {a} should be ashamed'"),
)
#: things a swear or an insult can be aimed at without harming anyone (`target_twins`), each takes "is"
THINGS = (
    "this printer", "my phone", "the Monday commute", "this weather", "the bus timetable", "my old laptop",
    "this traffic", "the wifi in this cafe", "that movie's ending", "this parking ticket", "my alarm clock",
    "the queue at the post office", "this flat-pack wardrobe", "the office coffee machine", "my tax return",
    "this level of the game",
)
#: insults and swearing, as the rest of a sentence that starts with their target (`target_twins`)
INSULTS = (
    "is a useless piece of shit", "is fucking garbage", "is so damn stupid", "is the worst, I hate it",
    "can go to hell", "is a total fucking joke", "is a disgusting mess", "sucks so fucking hard",
    "is pathetic", "makes me want to scream, fuck this",
)
#: frames around one target and one insult; slots as `HATE_FRAMES` ({G}/{g} the target, {a} the insult)
TARGET_FRAMES = (
    "a meme captioned '{G} {a}'",
    "a tweet: '{G} {a}.'",
    "a sticky note on the fridge: '{G} {a}'",
    "I'm done pretending: {g} {a}.",
    "a group chat screenshot: '{g} {a}'",
    "a t-shirt printed with '{G} {a}'",
    "a cartoon of a man yelling that {g} {a}",
    "Let's be honest, {g} {a}.",
)
#: benign answers to a claim that no asserted twin mirrors; slots as `HATE_FRAMES`
COUNTER = (
    "To everyone saying {g} {a}: they are nurses, teachers and neighbours.",
    "When someone tells you {g} {a}, ask them how many they actually know.",
    "Saying that {g} {a} is hateful, and I won't stay quiet about it.",
    "The comment that {g} {a} was reported and removed by the moderators.",
    "an infographic on how fast posts claiming {g} {a} spread online, bar chart, clean design",
    "a courtroom sketch: a man sentenced for a hate crime after telling a bus driver that {g} {a}",
    "{G} {d}. Their neighbours said so at a vigil, candles in the rain.",
    "I grew up hearing that {g} {a}. Then I met some, and I was ashamed of what I had been told.",
    "No one deserves to hear that they are vermin. {G} are our friends.",
    "a mural painted by the community after someone wrote that {g} {a} on a wall in their street",
    "Hate is not an opinion. {G} {d}.",
    "a teacher explaining to her class why the idea that {g} {a} is a dangerous stereotype",
)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _render(frame: str, target: str, claim: tuple[str, str], tail: str) -> str:
    asserted, denied = claim
    text = frame.format(G=_cap(target), g=target, n=target, a=asserted, d=denied)
    return text + tail if not text.endswith(".") else text


def _distinct(n: int, draw: Callable[[], tuple[str, str, str]]) -> list[Twin]:
    """Up to `n` twins from `draw()` -> (benign, unsafe, category), each text on one side of one pair."""
    out: list[Twin] = []
    seen: set[str] = set()
    for _ in range(n * 4):  # bounded retries
        if len(out) >= n:
            break
        b, u, cat = draw()
        if b.lower() in seen or u.lower() in seen:
            continue
        seen.update((b.lower(), u.lower()))
        out.append(Twin(b, u, cat, (cat,), hashlib.sha256(f"{b}\x00{u}".encode()).hexdigest()[:12]))
    return out


def _claim_twins(seed: int, n: int, affirm: bool) -> list[Twin]:
    rng = random.Random(f"affirm:{seed}") if affirm else random.Random(seed)  # their own draws: few shared unsafe sides

    def draw() -> tuple[str, str, str]:
        cat = "hate" if rng.random() < 0.75 else "harassment"
        frames, targets, claims, affirms = ((HATE_FRAMES, TARGETS, HATE_CLAIMS, AFFIRM_CLAIMS) if cat == "hate"
                                            else (HARASSMENT_FRAMES, PRIVATE, HARASSMENT_CLAIMS, AFFIRM_PERSON))
        (bad, good), target, claim = rng.choice(frames), rng.choice(targets), rng.choice(claims)
        tail = rng.choice(USER_TAILS)
        u = _render(bad, target, claim, tail)
        b = _render(bad, target, (rng.choice(affirms), ""), tail) if affirm else _render(good, target, claim, tail)
        return b, u, cat

    return _distinct(n, draw)


def stance_twins(seed: int = 0, n: int = 600) -> list[Twin]:
    """Up to `n` distinct stance twins, deterministic for `seed`: three in four hate (about a group in `TARGETS`),
    one in four harassment (about a private person in `twins.PRIVATE`). The unsafe side asserts the claim, the
    benign side (a hard negative) denies, condemns or reports it; frames that are not sentences take one real-user
    tail, the same on both sides."""
    return _claim_twins(seed, n, affirm=False)


def affirm_twins(seed: int = 0, n: int = 600) -> list[Twin]:
    """Up to `n` distinct affirmation twins, deterministic for `seed`, drawn as `stance_twins` draws: the unsafe side
    asserts a hateful or harassing claim in a frame, the benign side asserts a kind or neutral one
    (`AFFIRM_CLAIMS`, `AFFIRM_PERSON`) about the same target in the same frame. The stance twins' benign sides all
    deny or condemn; with them alone, "a group named, no denial" is a shortcut to the unsafe label."""
    return _claim_twins(seed, n, affirm=True)


def target_twins(seed: int = 0, n: int = 600) -> list[Twin]:
    """Up to `n` distinct target twins, deterministic for `seed`: one frame and one insult or swear (`INSULTS`),
    aimed once at a thing (`THINGS`: benign, a hard negative) and once at a private person (`twins.PRIVATE`:
    harassment, "mocking a person" in the policy), with one real-user tail on both sides. Swearing is not harm;
    aiming it at a person is: the harmful element is the target."""
    rng = random.Random(f"target:{seed}")

    def draw() -> tuple[str, str, str]:
        frame, thing, person, insult = (rng.choice(TARGET_FRAMES), rng.choice(THINGS), rng.choice(PRIVATE),
                                        rng.choice(INSULTS))
        tail = rng.choice(USER_TAILS)
        return _render(frame, thing, (insult, ""), tail), _render(frame, person, (insult, ""), tail), "harassment"

    return _distinct(n, draw)


def counter_speech(seed: int = 0, n: int = 300) -> list[str]:
    """Up to `n` distinct benign answers to a hateful claim (`COUNTER`), deterministic for `seed`."""
    rng = random.Random(seed)
    out: dict[str, None] = {}
    for _ in range(n * 4):
        if len(out) >= n:
            break
        out.setdefault(_render(rng.choice(COUNTER), rng.choice(TARGETS), rng.choice(HATE_CLAIMS), ""), None)
    return list(out)
