"""What planners write for the parts this service ablates, read as arms: the vocabulary of plans.

A planner (a person or an LLM) names an arm in its own words: "first_third_layers", "Top-4", "last 4
layers", "middle 4 layers" (a window of 4 layers around the middle, not a third), "layers 10-20",
"16 heads with 1024 channels", "1024 channels, 16 heads", "16x1024", "remove the layer weight
matrix", "Model 3", "Multi-Layers Trainable Pooling + Causal Attention", "causal attention". Each
phrase is read together with the section's ablated part: a bare "4" is the top 4 layers only under
a "number of layers" part. A phrase becomes one arm of the kinds the shipped studies compare
(search/plans.py builds it), and every word of it must be understood: a phrase that is only partly
understood ("8 heads" without the channels, "hierarchical attention") is a ``PhraseError`` that
names the phrase and what of it was understood, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from objectives.config.variants import VARIANTS
from search.plans import (
    Arm,
    PlanError,
    attention_arm,
    get_plan,
    layer_weight_arms,
    layers_arm,
    variant_arm,
    width_arm,
)

__all__ = [
    "ATTENTION",
    "LAYERS",
    "VARIANT",
    "VOCABULARY",
    "WEIGHTS",
    "WIDTHS",
    "PhraseError",
    "Reading",
    "baseline_of",
    "is_layer_count",
    "normalise",
    "read_phrase",
    "read_removal",
]

# The kinds of arm a phrase can name; one section compares arms of one kind.
LAYERS = "layer sets"
WIDTHS = "heads x channels"
VARIANT = "pooling x attention variants"
ATTENTION = "attention modes"
WEIGHTS = "layer weights W"

VOCABULARY = (
    "understood are layer sets (first/middle/last third, top/last K, first K, middle K, "
    "layers 10-20, all; a bare K under a 'number of layers' part), heads x channels "
    "(16 heads x 1024 channels, 16x1024), the variants model1..model5 or their names "
    "(multi-layers trainable pooling + causal attention), causal or bidirectional attention, "
    "and removing the layer weights W"
)

_BASELINE_MARK = re.compile(
    r"\(\s*(?:the\s+)?(?:current(?:\s+(?:method|setting|setup|default))?|baseline|default|"
    r"original(?:\s+method)?|proposed(?:\s+method)?|ours)\s*\)"
    r"|[-–—:,]\s*(?:the\s+)?(?:current\s+method|baseline|default)\s*$",
    re.IGNORECASE,
)
_FILLER = frozenset(
    [
        "the",
        "a",
        "an",
        "of",
        "only",
        "use",
        "using",
        "used",
        "uses",
        "with",
        "and",
        "in",
        "from",
        "as",
        "for",
        "each",
        "per",
        "all",
        "set",
        "subset",
        "layer",
        "layers",
        "hidden",
        "states",
        "state",
        "transformer",
        "llm",
        "input",
        "inputs",
    ]
)


class PhraseError(PlanError):
    """A phrase that maps to no arm; the message names the phrase and what of it is understood."""

    def __init__(self, phrase: str, understood: str) -> None:
        super().__init__(f"cannot map '{phrase}'; {understood}")
        self.phrase = phrase
        self.understood = understood


@dataclass(frozen=True)
class Reading:
    """One phrase as understood: the arm it became, of which kind, and whether the planner marked it
    as the current method ("(current method)")."""

    phrase: str
    kind: str
    arm: Arm
    marked_baseline: bool = False


@dataclass(frozen=True)
class _Try:
    """What one reader made of a phrase: an arm (or ``None``), what it understood, what is left."""

    kind: str
    arm: Arm | None
    understood: str
    left: tuple[str, ...] = ()


def normalise(text: str) -> str:
    """Lower case, ranges as ``10 to 20``, ``16x1024`` as ``16 x 1024``, punctuation as spaces."""
    text = text.lower().replace("w/o", " without ")
    text = re.sub(r"(\d)\s*(?:-|–|—|\.\.)\s*(\d)", r"\1 to \2", text)
    text = re.sub(r"(\d)\s*[×x*]\s*(\d)", r"\1 x \2", text)
    text = text.replace("×", " x ").replace("*", " x ")
    text = re.sub(r"[_\-–—/,.:;`'\"()\[\]{}+=!?&|%#<>]+", " ", text)
    return " ".join(text.split())


def is_layer_count(ablated_part: str) -> bool:
    """Whether an ablated part is how many layers feed the pooling ("Number of layers used"), under
    which a bare number K is the top K layers."""
    text = normalise(ablated_part)
    return bool(
        re.search(r"\b(?:number|count|num|amount|how many)\b.*\blayers?\b", text)
        or re.search(r"\blayers? count\b|\bk layers\b|\btop k\b", text)
    )


def read_phrase(phrase: str, layer_count: bool = False) -> Reading:
    """The arm ``phrase`` names; ``layer_count`` when the section's ablated part is a number of
    layers. ``PhraseError`` names the phrase and what of it is understood."""
    marked = bool(_BASELINE_MARK.search(phrase))
    text = normalise(_BASELINE_MARK.sub(" ", phrase))
    shown = " ".join(phrase.split())
    if not text:
        raise PhraseError(shown, "it is empty")
    tries = [t for reader in _READERS if (t := reader(text, layer_count)) is not None]
    for found in tries:
        if found.arm is not None and not found.left:
            return Reading(shown, found.kind, found.arm, marked)
    if not tries:
        raise PhraseError(shown, VOCABULARY)
    best = min(tries, key=lambda t: (len(t.left), t.arm is None))
    rest = f" but not '{' '.join(best.left)}'" if best.left else ""
    raise PhraseError(shown, f"understood {best.understood}{rest}")


def read_removal(ablated_part: str) -> tuple[Arm, Arm]:
    """The arms of REMOVE: with and without the part; only the layer weights W can be removed."""
    if _mentions_weights(normalise(ablated_part)):
        return layer_weight_arms()
    raise PhraseError(
        " ".join(ablated_part.split()),
        "REMOVE understands the trainable layer weights W (the layer weight matrix)",
    )


def baseline_of(kind: str) -> Arm:
    """The current method's arm for ``kind``: the shipped study's baseline (all layers, 32x2048,
    model5, W on), or model5's attention."""
    study = {LAYERS: "top-k-layers", WIDTHS: "cross-attn-width", VARIANT: "pooling-attention"}
    study[WEIGHTS] = "layer-weights"
    if kind == ATTENTION:
        variants = get_plan("pooling-attention")
        return attention_arm(VARIANTS[variants.baseline]["model.attention"])
    plan = get_plan(study[kind])
    return plan.arm(plan.baseline)


def _left(text: str, *spans: tuple[int, int], filler: frozenset[str] = _FILLER) -> tuple[str, ...]:
    """The words of ``text`` outside ``spans`` that are not filler."""
    keep = list(text)
    for start, end in spans:
        keep[start:end] = " " * (end - start)
    return tuple(w for w in "".join(keep).split() if w not in filler)


_FIRST = "first|bottom|lowest|lower|early|earliest|initial|shallowest|shallow|beginning"
_MIDDLE = "middle|mid|central|center|centre|intermediate"
_LAST = "top|last|final|upper|highest|deepest|late|latest|later"
_PART = f"{_FIRST}|{_MIDDLE}|{_LAST}"


def _part(word: str) -> str:
    if re.fullmatch(_FIRST, word):
        return "first"
    return "middle" if re.fullmatch(_MIDDLE, word) else "last"


def _window(part: str, k: int) -> Arm:
    if part == "last":
        return layers_arm(f"top {k}", f"top_k:{k}")
    return layers_arm(f"{part} {k}", f"{part}_k:{k}")


def _layers(text: str, layer_count: bool) -> _Try | None:
    third = re.search(rf"\b({_PART}) (?:third|1 3)\b", text)
    if third:
        part = _part(third[1])
        arm = layers_arm(f"{part} third", f"{part}_third")
        return _Try(LAYERS, arm, f"the {part} third of the layers", _left(text, third.span()))
    window = re.search(rf"\b({_PART}) (?:k )?(\d+)\b|\b(\d+) ({_PART})\b", text)
    if window:
        part, k = (window[1], window[2]) if window[1] else (window[4], window[3])
        arm = _window(_part(part), int(k))
        return _Try(LAYERS, arm, f"the {arm.label} layers", _left(text, window.span()))
    span = re.search(r"\blayers? (\d+) to (\d+)\b|\b(\d+) to (\d+)(?: layers?)?\b", text)
    if span and ("layer" in text or layer_count):
        low, high = (span[1], span[2]) if span[1] else (span[3], span[4])
        arm = layers_arm(f"layers {low}-{high}", f"{low}-{high}")
        return _Try(LAYERS, arm, f"layers {low} to {high}", _left(text, span.span()))
    listed = re.search(r"\blayers? ((?:\d+ (?:and )?)*\d+)\b", text)
    if listed:
        numbers = ",".join(re.findall(r"\d+", listed[1]))
        label = f"layer{'s' if ',' in numbers else ''} {numbers}"
        return _Try(LAYERS, layers_arm(label, numbers), label, _left(text, listed.span()))
    every = re.search(r"\b(?:all|every|each)(?: \d+)?(?: (?:the|of|hidden|transformer))*", text)
    if every and ("layer" in text or layer_count or text == "all"):
        return _Try(LAYERS, baseline_of(LAYERS), "all layers", _left(text, every.span()))
    one = re.search(rf"\b({_PART}) layer\b", text)
    if one:
        arm = _window(_part(one[1]), 1)
        return _Try(LAYERS, arm, f"the {one[1]} layer ({arm.label})", _left(text, one.span()))
    count = re.fullmatch(r"(?:k )?(\d+)(?: layers?)?", text)
    if count and layer_count:
        arm = _window("last", int(count[1]))
        return _Try(LAYERS, arm, f"{arm.label} layers (a number of layers)")
    if count:
        return _Try(
            LAYERS,
            None,
            f"{count[1]} layers, but not which: write top/last, first or middle {count[1]} "
            "(a bare count means the top K only under a 'number of layers' ablated part)",
        )
    vague = re.search(rf"\b({_PART}) layers\b", text)
    if vague:
        return _Try(LAYERS, None, f"the {vague[1]} layers, but not how many (e.g. top 4)")
    return None


_HEADS = r"(?:attention |cross attention )?heads?"
_CHANNELS = r"(?:channels?|dims?|dimensions?|dimensional|width|head dims?|head dimensions?)"
_WIDTH_FILLER = _FILLER | frozenset(
    [
        "x",
        "by",
        "heads",
        "head",
        "channels",
        "channel",
        "dims",
        "dim",
        "dimensions",
        "width",
        "attention",
        "cross",
        "each",
        "per",
    ]
)


def _widths(text: str, layer_count: bool) -> _Try | None:
    numbers = re.findall(r"\d+", text)
    if not numbers:
        return None
    keyed = (  # "heads 16 head dim 1024", as heads=16, head_dim=1024 read
        re.search(r"\bheads? (\d+)\b", text),
        re.search(r"\b(?:head dims?|head dimensions?|channels?|width) (\d+)\b", text),
    )
    written = (  # "16 heads with 1024 channels", in either order
        re.search(rf"\b(\d+) {_HEADS}\b(?! dim)", text),
        re.search(rf"\b(\d+) {_CHANNELS}\b", text),
    )
    heads, channels = keyed if all(keyed) else written
    h, c = (heads[1] if heads else None), (channels[1] if channels else None)
    spans = [m.span() for m in (heads, channels) if m]
    pair = re.search(r"\b(\d+) (?:x|by) (\d+)\b", text)
    if h is None and c is None and pair:  # 16x1024: heads first, as the shipped labels
        h, c = pair[1], pair[2]
        spans.append(pair.span())
    elif len(numbers) == 2 and (h is None) != (c is None):  # 16 heads x 1024
        other = numbers[1] if numbers[0] == (h or c) else numbers[0]
        h, c = (h, other) if h else (other, c)
    if h is None and c is None:
        return None
    if h is None or c is None:
        what = f"{h} heads, but not the channels per head" if h else f"{c} channels per head"
        return _Try(WIDTHS, None, what + ("" if h else ", but not the number of heads"))
    left = _left(text, *spans, filler=_WIDTH_FILLER)
    left = tuple(w for w in left if w not in (h, c))
    return _Try(WIDTHS, width_arm(int(h), int(c)), f"{h} heads x {c} channels", left)


_VARIANT_FILLER = _FILLER | frozenset(
    ["trainable", "pooling", "pool", "attention", "mask", "token", "tokens", "x", "plus", "vs"]
)
_POOLING = {
    "eos": r"\beos\b(?: last)?(?: token)?|\blast token\b",
    "last_layer": r"\blast layer\b",
    "multi_layer": r"\bmulti(?:ple)? ?layers?\b|\ball layers\b",
}
_MODES = {
    "bidirectional": r"\bbi ?directional\b|\bnon causal\b",
    "causal": r"(?<!non )\bcausal\b|\bunidirectional\b",
}


def _variants(text: str, layer_count: bool) -> _Try | None:
    named = re.search(r"\bmodel ?([1-5])\b", text)
    pooling = {k: m for k, p in _POOLING.items() if (m := re.search(p, text))}
    if not named and "pool" not in text and "eos" not in pooling:
        return None
    modes = {k: m for k, p in _MODES.items() if (m := re.search(p, text))}
    spans = [m.span() for m in (named, *pooling.values(), *modes.values()) if m]
    left = _left(text, *spans, filler=_VARIANT_FILLER)
    if len(pooling) > 1 or len(modes) > 1:
        said = " and ".join([*pooling, *modes]).replace("_", "-")
        return _Try(VARIANT, None, f"{said}, more than one variant", left)
    claims = {"model.pooling.kind": next(iter(pooling))} if pooling else {}
    claims |= {"model.attention": next(iter(modes))} if modes else {}
    said = " with ".join(
        [f"{k.replace('_', '-')} pooling" for k in pooling] + [f"{m} attention" for m in modes]
    )
    if named:
        name = f"model{named[1]}"
        if not claims.items() <= VARIANTS[name].items():
            return _Try(VARIANT, None, f"{name}, but also {said}, which {name} is not", left)
        return _Try(VARIANT, variant_arm(name), name, left)
    if set(pooling) == {"eos"} and not modes:
        claims["model.attention"] = "causal"  # EOS pooling is the causal variant only
    matches = [n for n, v in VARIANTS.items() if claims.items() <= v.items()]
    if len(matches) == 1:
        return _Try(VARIANT, variant_arm(matches[0]), matches[0], left)
    if not pooling:
        return None
    if not matches:
        return _Try(VARIANT, None, f"{said}, which is none of the five variants", left)
    return _Try(VARIANT, None, f"{said}, but not the attention (causal or bidirectional)", left)


def _attention(text: str, layer_count: bool) -> _Try | None:
    modes = {k: m for k, p in _MODES.items() if (m := re.search(p, text))}
    filler = _FILLER | {"attention", "mask", "masking", "self", "full"}
    if len(modes) == 1:
        ((mode, match),) = modes.items()
        left = _left(text, match.span(), filler=filler)
        return _Try(ATTENTION, attention_arm(mode), f"{mode} attention", left)
    if "attention" in text.split():
        left = _left(text, filler=filler)
        return _Try(ATTENTION, None, "'attention' (causal or bidirectional here)", left)
    return None


_W = r"\bw\b|\blayer ?wise weights?\b|\blayer weights?\b|\blayer weighting\b|\bweight matrix\b"
_OFF = (
    r"\b(?:remove|removed|removing|without|no|drop|dropped|dropping|disable|disabled|off|"
    r"exclude|excluded|excluding|ablate|ablated|ablating)\b"
)


def _mentions_weights(text: str) -> bool:
    return re.search(_W, text) is not None


def _weights(text: str, layer_count: bool) -> _Try | None:
    mention = re.search(_W, text)
    if not mention:
        return None
    off = re.search(_OFF, text)
    on, off_arm = layer_weight_arms()
    arm = off_arm if off else on
    filler = _FILLER | frozenset(
        [
            "trainable",
            "matrix",
            "weight",
            "weights",
            "w",
            "on",
            "keep",
            "kept",
            "enable",
            "enabled",
            "include",
            "included",
        ]
    )
    spans = [m.span() for m in (mention, off) if m]
    return _Try(
        WEIGHTS, arm, f"{arm.label} (the layer weights)", _left(text, *spans, filler=filler)
    )


_READERS: tuple[Callable[[str, bool], _Try | None], ...] = (
    _variants,
    _weights,
    _widths,
    _layers,
    _attention,
)
