"""pydantic's validation errors → sentences naming the file, the key path and the fix.

Every problem of a file is reported at once (one line each), so a file with three typos
takes one round to fix, not three. A misspelt key that is required (``campain:``) is one
problem — "unknown key 'campain'; did you mean 'campaign'?" — not an unknown key plus a
missing one.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from campaign.config.values import shown
from campaign.errors import CampaignError, ConfigError

_MAX_MESSAGE_CHARS = 300
_MAX_PROBLEMS = 20
# What to write for a required key, shown when it is missing.
_REQUIRED_EXAMPLES = {
    "campaign": "campaign: spring-renewals-2026",
    "scenario_id": "scenario_id: scn_renewal_v3",
    "input": "input: {path: contacts.csv, phone_column: phone}",
    "input.path": "path: ../data/contacts.csv (the CSV export)",
}


class ConfigProblems(ConfigError):
    """Several problems of one campaign file; ``problems`` holds one ConfigError each."""

    def __init__(self, problems: Sequence[ConfigError], path: str) -> None:
        self.problems = list(problems)
        self.path = path
        self.key = None
        shown_problems = self.problems[:_MAX_PROBLEMS]
        lines = [f"  {problem}" for problem in shown_problems]
        if len(self.problems) > len(shown_problems):
            lines.append(f"  … and {len(self.problems) - len(shown_problems)} more")
        header = f"{path}: {len(self.problems)} problems in the campaign file:"
        CampaignError.__init__(self, "\n".join([header, *lines]))


def one_error(problems: Sequence[ConfigError], path: str) -> ConfigError:
    """The error to raise for ``problems`` (at least one): itself when it is alone."""
    return problems[0] if len(problems) == 1 else ConfigProblems(problems, path)


def config_error(
    exc: ValidationError, where: str, model: type[BaseModel], document: Mapping[str, Any]
) -> ConfigError:
    """Every validation problem as one sentence naming the key path and the fix."""
    errors = _without_union_noise(exc.errors())
    missing = {_key_path(_loc(error)) for error in errors if error["type"] == "missing"}
    typos = {}  # unknown key path → the valid key it is close to
    for error in errors:
        loc = _loc(error)
        if error["type"] == "extra_forbidden":
            close = _close_key(model, loc)
            if close is not None:
                typos[_key_path(loc)] = _key_path([*loc[:-1], close])
    explained = set(typos.values()) & missing  # missing because they were misspelt
    order = {str(key): index for index, key in enumerate(document)}
    problems: list[tuple[int, ConfigError]] = []
    seen: set[str] = set()
    for error in errors:
        loc = _loc(error)
        key = _key_path(loc)
        if error["type"] == "missing" and key in explained:
            continue
        problem = _problem(error, loc, where, model, typos.get(key), missing)
        if str(problem) not in seen:
            seen.add(str(problem))
            problems.append((order.get(str(loc[0]), -1) if loc else -1, problem))
    problems.sort(key=lambda item: item[0])  # in the order of the file's keys
    return one_error([problem for _, problem in problems], where)


def _missing_message(key: str) -> str:
    example = _REQUIRED_EXAMPLES.get(key)
    return "required key is missing" + (f"; add e.g. {example}" if example else "")


def _close_key(model: type[BaseModel], loc: list[object]) -> str | None:
    close = difflib.get_close_matches(str(loc[-1]), _valid_keys(model, loc[:-1]), n=1, cutoff=0.5)
    return close[0] if close else None


def _problem(
    error: ErrorDetails,
    loc: list[object],
    where: str,
    model: type[BaseModel],
    meant: str | None,
    missing: set[str],
) -> ConfigError:
    """One error as a ConfigError; ``meant`` is the valid key an unknown one is close to."""
    key = _key_path(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        if meant is not None:
            required = f" ({meant} is required)" if meant in missing else ""
            hint = f"; did you mean '{meant.rpartition('.')[2]}'?{required}"
        else:
            hint = f"; valid keys: {', '.join(_valid_keys(model, loc[:-1]))}"
        return ConfigError(f"unknown key {shown(str(loc[-1]))}{hint}", path=where, key=key)
    if kind == "missing":
        return ConfigError(_missing_message(key), path=where, key=key)
    if loc == ["calling_hours"] and not isinstance(error.get("input"), dict | None):
        return ConfigError(
            'write \'unrestricted\' or {start: "09:00", end: "20:00", days: [mon, ...]}',
            path=where,
            key=key,
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[: _MAX_MESSAGE_CHARS - 3] + "..."
    got = shown(error.get("input"))
    # never echo api.key_env (someone may have pasted the key itself there) nor state_url
    # (it may hold a password); the messages of both say what is wrong without it
    if got not in message and key not in ("api.key_env", "state_url"):
        message = f"{message} (got {got})"
    return ConfigError(message, path=where, key=key)


def _loc(error: ErrorDetails) -> list[object]:
    return [part for part in error["loc"] if not _is_union_tag(part)]


def _without_union_noise(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Drop the errors of a union's other branches when one branch says what is wrong.

    ``calling_hours: {strat: …}`` fails both as CallingHours (unknown key 'strat') and as
    the literal 'unrestricted'; only the first helps.
    """
    branches: dict[tuple[object, ...], set[object]] = {}
    for error in errors:
        for index, part in enumerate(error["loc"]):
            if _is_union_tag(part):
                branches.setdefault(tuple(error["loc"][:index]), set()).add(part)
    kept = []
    for error in errors:
        loc = error["loc"]
        tags = [(index, part) for index, part in enumerate(loc) if _is_union_tag(part)]
        if tags:
            index, part = tags[0]
            others = branches[tuple(loc[:index])] - {part}
            is_literal = str(part).startswith("literal[")
            if is_literal and others and isinstance(error.get("input"), dict):
                continue  # a mapping was meant as the model branch
            if not is_literal and error["type"] == "model_type" and others:
                continue  # a scalar was meant as the literal branch
        kept.append(error)
    return kept


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and (
        part[:1].isupper() or part.startswith(("literal[", "function-"))
    )


def _key_path(loc: Sequence[object]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = str(part) if len(str(part)) <= 40 else str(part)[:37] + "..."
            text += f".{name}" if text else name
    return text


def _valid_keys(model: type[BaseModel], loc: Sequence[object]) -> list[str]:
    """The keys allowed at the given path, as written in the YAML file."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None) if field else None
        found = [
            arg
            for arg in (annotation, *getattr(annotation, "__args__", ()))
            if isinstance(arg, type) and issubclass(arg, BaseModel)
        ]
        if not found:
            return []
        model = found[0]
    internal = {"source_path"}
    return [
        field.alias or name for name, field in model.model_fields.items() if name not in internal
    ]
