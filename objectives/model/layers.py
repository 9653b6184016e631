"""Which transformer layers feed multi-layer pooling: the layer-set rules of docs/PAPER.md ("The
five studies"), resolved per backbone.

Plans name layer sets by rule (``last_third``, ``top_k:8``) so one plan fits backbones of any depth;
this module turns a rule into 1-based layer numbers, and refuses a selection the backbone cannot
give, naming its layer count, so a study skips that arm instead of running a wrong one.
"""

from __future__ import annotations

from objectives.config.trial_config import ConfigError

RULES = ("all", "first_third", "middle_third", "last_third", "top_k:K", "first_k:K", "middle_k:K")
_THIRDS = {"first_third": 0, "middle_third": 1, "last_third": 2}


def resolve_layers(rule: str | tuple[int, ...], num_layers: int) -> tuple[int, ...]:
    """The 1-based transformer layers (1..num_layers) that ``rule`` selects, in increasing order.

    Thirds split 1..L into three contiguous parts whose sizes differ by at most one, the earlier
    parts taking the extra layers (L=7 -> 1-3, 4-5, 6-7); ``top_k:K`` is L-K+1..L, ``first_k:K``
    1..K and ``middle_k:K`` the window of K layers around the middle, any odd layer out above it
    (L=30, K=4 -> 14-17). An explicit tuple or a string like ``"1,2,5"`` or ``"10-20"`` is taken as
    given.
    """
    if num_layers < 1:
        raise ConfigError(f"the backbone has {num_layers} layers; multi-layer pooling needs >= 1")
    if isinstance(rule, str):
        name = rule.strip().lower()
        if name == "all":
            return tuple(range(1, num_layers + 1))
        if name in _THIRDS:
            return _third(_THIRDS[name], num_layers)
        for prefix in _WINDOWS:
            if name.startswith(prefix):
                return _window(prefix, name.removeprefix(prefix), num_layers)
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


# The first layer of a K-layer window on L layers, by rule prefix.
_WINDOWS = {
    "top_k:": lambda k, n: n - k + 1,
    "first_k:": lambda k, n: 1,
    "middle_k:": lambda k, n: (n - k) // 2 + 1,
}


def _window(prefix: str, text: str, num_layers: int) -> tuple[int, ...]:
    try:
        k = int(text)
    except ValueError:
        raise ConfigError(f"'{prefix}{text}': K must be an integer, e.g. {prefix}4") from None
    if not 1 <= k <= num_layers:
        raise ConfigError(
            f"{prefix}{k} needs {k} layers but the backbone has {num_layers}; "
            f"choose 1 <= K <= {num_layers}"
        )
    start = _WINDOWS[prefix](k, num_layers)
    return tuple(range(start, start + k))


def _parse_list(text: str) -> tuple[int, ...]:
    layers: list[int] = []
    try:
        for part in text.replace(",", " ").split():
            low, dash, high = part.partition("-")
            layers.extend(range(int(low), int(high) + 1) if dash else [int(part)])
    except ValueError:
        raise ConfigError(
            f"unknown layer rule {text!r}; use one of {list(RULES)} or layer numbers like "
            "'1,2,5' or '10-20'"
        ) from None
    return tuple(layers)


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
