"""Fault injection: seeded, per-route rules that make the sandbox misbehave on purpose.

SPEC grammar (``--faults`` and the ``faults`` key of a config file)::

    SPEC    := RULE ("," RULE)*
    RULE    := [METHOD " "] PATH "=" KIND [":" DELAY] ["@" PROB] (";" OPTION)*
             | "ambiguous@" PROB (";" OPTION)*
    METHOD  := GET | POST | PUT | DELETE | *          (absent = any method)
    PATH    := a glob over the request path: "*" matches anything, "/" included; a
               pattern ending in "/" also matches everything below it ("*/" = every path)
    KIND    := error_before | error_after | reset_after | proxy_503 | delay
    DELAY   := "<ms>ms" | "<lo>-<hi>ms"               (delay only; uniform in the range)
    PROB    := probability in (0, 1] that a matching request is hit (default 1)
    OPTION  := "every=N"  hit only every N-th matching request (N-th, 2N-th, ...)
             | "max=K"    hit at most K times in total

Examples::

    POST /v1/calls=reset_after@0.2, */=delay:20-50ms, GET /v1/calls=proxy_503@0.1
    POST /v1/calls=error_after;every=3;max=2
    ambiguous@0.2          # error_after or reset_after (half each) on POST /v1/calls and
                           # POST /v1/batches, together hitting 20% of them

Kinds: ``error_before`` answers 500 and executes nothing; ``error_after`` executes (and the
idempotency memory keeps the real answer) but answers 500; ``reset_after`` executes, keeps
the answer, and drops the connection without a response; ``delay`` adds latency while the
request is being executed (so a concurrent duplicate sees ``request_in_progress``);
``proxy_503`` answers 503 with an HTML body as a proxy would, before the API sees the
request (not counted toward any limit). Only the first hitting rule of the kinds other than
``delay`` applies to a request; every hitting ``delay`` rule adds up.
"""

from __future__ import annotations

import fnmatch
import random
import re
from dataclasses import dataclass
from typing import Literal, cast

FaultKind = Literal["error_before", "error_after", "reset_after", "proxy_503", "delay", "ambiguous"]
KINDS: tuple[str, ...] = ("error_before", "error_after", "reset_after", "proxy_503", "delay")
METHODS = ("GET", "POST", "PUT", "DELETE", "*")
_DELAY = re.compile(r"^(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?ms$")


class FaultSpecError(ValueError):
    """A --faults SPEC (or config entry) that does not follow the grammar."""


@dataclass(frozen=True)
class FaultRule:
    """One fault rule: which requests it selects, what it does, how often."""

    kind: FaultKind
    method: str = "*"
    path: str = "*"
    probability: float = 1.0
    every: int | None = None
    max_times: int | None = None
    delay_ms: tuple[float, float] = (0.0, 0.0)

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule selects a request with ``method`` and ``path``."""
        if self.method != "*" and self.method != method.upper():
            return False
        pattern = self.path + "*" if self.path.endswith("/") else self.path
        return fnmatch.fnmatchcase(path, pattern)


def parse_faults(spec: str) -> list[FaultRule]:
    """Parse a --faults SPEC string into rules (see the module docstring)."""
    rules: list[FaultRule] = []
    for chunk in spec.split(","):
        text = chunk.strip()
        if text:
            rules.extend(_parse_rule(text))
    return rules


def _parse_rule(text: str) -> list[FaultRule]:
    head, *options = (part.strip() for part in text.split(";"))
    every, max_times = _parse_options(options, text)
    if head.startswith("ambiguous"):
        probability = _parse_probability(head[len("ambiguous") :], text)
        return [
            FaultRule("ambiguous", "POST", path, probability, every, max_times)
            for path in ("/v1/calls", "/v1/batches")
        ]
    if "=" not in head:
        raise FaultSpecError(f"fault rule {text!r}: expected [METHOD] PATH=KIND")
    selector, action = (part.strip() for part in head.split("=", 1))
    method, path = "*", selector
    if " " in selector:
        method, path = (part.strip() for part in selector.split(None, 1))
        method = method.upper()
    if method not in METHODS:
        raise FaultSpecError(f"fault rule {text!r}: unknown method {method!r}")
    if not path:
        raise FaultSpecError(f"fault rule {text!r}: empty path")
    action, _, prob_text = action.partition("@")
    kind, _, arg = action.partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        raise FaultSpecError(f"fault rule {text!r}: unknown kind {kind!r} (one of {KINDS})")
    delay_ms = (0.0, 0.0)
    if kind == "delay":
        delay_ms = _parse_delay(arg.strip(), text)
    elif arg:
        raise FaultSpecError(f"fault rule {text!r}: only delay takes an argument")
    probability = _parse_probability("@" + prob_text if prob_text else "", text)
    rule = FaultRule(cast(FaultKind, kind), method, path, probability, every, max_times, delay_ms)
    return [rule]


def _parse_delay(arg: str, text: str) -> tuple[float, float]:
    match = _DELAY.match(arg.replace(" ", ""))
    if match is None:
        raise FaultSpecError(f"fault rule {text!r}: delay needs e.g. ':20ms' or ':20-50ms'")
    low = float(match.group(1))
    high = float(match.group(2)) if match.group(2) else low
    if high < low:
        raise FaultSpecError(f"fault rule {text!r}: delay range is backwards")
    return low, high


def _parse_probability(text: str, rule: str) -> float:
    if not text:
        return 1.0
    if not text.startswith("@"):
        raise FaultSpecError(f"fault rule {rule!r}: expected '@PROBABILITY'")
    try:
        probability = float(text[1:])
    except ValueError:
        raise FaultSpecError(f"fault rule {rule!r}: bad probability {text[1:]!r}") from None
    if not 0.0 < probability <= 1.0:
        raise FaultSpecError(f"fault rule {rule!r}: probability must be in (0, 1]")
    return probability


def _parse_options(options: list[str], text: str) -> tuple[int | None, int | None]:
    every: int | None = None
    max_times: int | None = None
    for option in options:
        name, _, value = option.partition("=")
        if name.strip() not in ("every", "max") or not value.strip().isdigit():
            raise FaultSpecError(f"fault rule {text!r}: bad option {option!r}")
        number = int(value)
        if number < 1:
            raise FaultSpecError(f"fault rule {text!r}: {name} must be >= 1")
        if name.strip() == "every":
            every = number
        else:
            max_times = number
    return every, max_times


@dataclass
class FaultDecision:
    """What the injector decided for one request."""

    delay_s: float = 0.0
    action: str | None = None  # error_before | error_after | reset_after | proxy_503


class FaultInjector:
    """Applies rules to requests, reproducibly for a given seed and request sequence."""

    def __init__(self, rules: list[FaultRule], seed: int = 0) -> None:
        self._rules = list(rules)
        self._random = random.Random(seed)
        self._seen = [0] * len(self._rules)
        self._hits = [0] * len(self._rules)

    def decide(self, method: str, path: str) -> FaultDecision:
        """Roll every matching rule once for this request."""
        decision = FaultDecision()
        for index, rule in enumerate(self._rules):
            if not rule.matches(method, path):
                continue
            self._seen[index] += 1
            if not self._fires(index, rule):
                continue
            if rule.kind == "delay":
                low, high = rule.delay_ms
                decision.delay_s += self._random.uniform(low, high) / 1000.0
                self._hits[index] += 1
            elif decision.action is None:
                action: str = rule.kind
                if rule.kind == "ambiguous":
                    action = self._random.choice(("error_after", "reset_after"))
                decision.action = action
                self._hits[index] += 1
        return decision

    def _fires(self, index: int, rule: FaultRule) -> bool:
        if rule.max_times is not None and self._hits[index] >= rule.max_times:
            return False
        if rule.every is not None and self._seen[index] % rule.every != 0:
            return False
        return rule.probability >= 1.0 or self._random.random() < rule.probability
