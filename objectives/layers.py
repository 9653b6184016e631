"""Which transformer layers feed multi-layer pooling: the layer-set rules of docs/PAPER.md ("The
five studies"), resolved per backbone.

Plans name layer sets by rule (``last_third``, ``top_k:8``) so one plan fits backbones of any depth;
this module turns a rule into 1-based layer numbers, and refuses a selection the backbone cannot
give, naming its layer count, so a study skips that arm instead of running a wrong one.
"""

from __future__ import annotations

from objectives.config import ConfigError

RULES = ("all", "first_third", "middle_third", "last_third", "top_k:K")
_THIRDS = {"first_third": 0, "middle_third": 1, "last_third": 2}


def resolve_layers(rule: str | tuple[int, ...], num_layers: int) -> tuple[int, ...]:
    """The 1-based transformer layers (1..num_layers) that ``rule`` selects, in increasing order.

    Thirds split 1..L into three contiguous parts whose sizes differ by at most one, the earlier
    parts taking the extra layers (L=7 -> 1-3, 4-5, 6-7); ``top_k:K`` is L-K+1..L. An explicit
    tuple or a string like ``"1,2,5"`` is taken as given.
    """
    if num_layers < 1:
        raise ConfigError(f"the backbone has {num_layers} layers; multi-layer pooling needs >= 1")
    if isinstance(rule, str):
        name = rule.strip().lower()
        if name == "all":
            return tuple(range(1, num_layers + 1))
        if name in _THIRDS:
            return _third(_THIRDS[name], num_layers)
        if name.startswith("top_k:"):
            return _top_k(name.removeprefix("top_k:"), num_layers)
        layers = _parse_list(rule)
    else:
        layers = tuple(rule)
    return _check_explicit(layers, num_layers)


def _third(part: int, num_layers: int) -> tuple[int, ...]:
    if num_layers < 3:
        raise ConfigError(
            f"layer thirds need at least 3 layers but the backbone has {num_layers}; use 'all'"
        )
    base, extra = divmod(num_layers, 3)
    sizes = [base + (1 if i < extra else 0) for i in range(3)]
    start = 1 + sum(sizes[:part])
    return tuple(range(start, start + sizes[part]))


def _top_k(text: str, num_layers: int) -> tuple[int, ...]:
    try:
        k = int(text)
    except ValueError:
        raise ConfigError(f"'top_k:{text}': K must be an integer, e.g. top_k:4") from None
    if not 1 <= k <= num_layers:
        raise ConfigError(
            f"top_k:{k} needs {k} layers but the backbone has {num_layers}; "
            f"choose 1 <= K <= {num_layers}"
        )
    return tuple(range(num_layers - k + 1, num_layers + 1))


def _parse_list(text: str) -> tuple[int, ...]:
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(
            f"unknown layer rule {text!r}; use one of {list(RULES)} or layer numbers like '1,2,5'"
        ) from None


def _check_explicit(layers: tuple[int, ...], num_layers: int) -> tuple[int, ...]:
    if not layers:
        raise ConfigError(
            f"empty layer selection; choose layers from 1 to {num_layers} (the backbone has "
            f"{num_layers} layers) or a rule such as 'all'"
        )
    bad = [layer for layer in layers if not 1 <= int(layer) <= num_layers]
    if bad:
        raise ConfigError(
            f"layers {bad} do not exist: the backbone has {num_layers} layers, numbered 1 to "
            f"{num_layers} (0, the embedding output, is not a transformer layer)"
        )
    return tuple(sorted({int(layer) for layer in layers}))
