"""Reading a campaign file's YAML without letting a hostile file cost memory or time.

A campaign file is a few dozen values. The bounds below refuse a file that is huge, or
whose aliases would expand it (a "billion laughs" alias bomb turns 1 KB into billions
of values), before anything expands it — pydantic's validation and error messages would.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from campaign.errors import ConfigError

MAX_FILE_BYTES = 1024 * 1024
MAX_YAML_VALUES = 10_000
_MAX_YAML_DEPTH = 50
_MAX_PROBLEM_CHARS = 300


def read_yaml(path: Path) -> object:
    """The parsed campaign file; ConfigError if it is unreadable, invalid or too big."""
    where = str(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError(
                f"the campaign file is over {MAX_FILE_BYTES:,} bytes; is this the right file?",
                path=where,
            )
        text = raw.decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("campaign file not found", path=where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the campaign file ({exc})", path=where) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or "invalid YAML")[:_MAX_PROBLEM_CHARS]
        raise ConfigError(f"not valid YAML{line}: {problem}", path=where) from None
    except RecursionError:
        raise ConfigError("not valid YAML: nested too deeply", path=where) from None
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, where: str) -> None:
    """ConfigError if aliases would expand the document beyond MAX_YAML_VALUES values.

    Counted on the parsed node graph, where an alias is a shared node, so the count
    costs what the file is long, not what it would expand to.
    """
    sizes: dict[int, int] = {}  # id(node) → values it expands to; -1 while being counted

    def size(node: yaml.Node, depth: int) -> int:
        known = sizes.get(id(node))
        if known is not None:
            if known < 0:
                raise ConfigError("a YAML alias (*name) refers to itself", path=where)
            return known
        if depth > _MAX_YAML_DEPTH:
            raise ConfigError(f"YAML nested over {_MAX_YAML_DEPTH} levels deep", path=where)
        sizes[id(node)] = -1
        total = 1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_YAML_VALUES:
                raise ConfigError(
                    f"the YAML expands to over {MAX_YAML_VALUES:,} values (anchors and "
                    "aliases repeating each other?); a campaign file needs a few dozen",
                    path=where,
                )
        sizes[id(node)] = total
        return total

    size(root, 0)
