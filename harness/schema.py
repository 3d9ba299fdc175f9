"""Small declarative validation for YAML configs (matrix, device profiles, budgets).

Why not pydantic: the runner must install on a Raspberry Pi or in Termux with only the runtime,
psutil and PyYAML. Every error names the file, the key path and what is allowed.
"""
from __future__ import annotations

import stat
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import ConfigError, HarnessError


# A config is a few KB; a shared file larger than this, or one whose aliases expand to more
# nodes than this, is not a config but an attack (a "billion laughs" alias bomb).
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000


def load_yaml(file: str | Path) -> Any:
    """Load YAML safely: never executes tags, and refuses a file over MAX_YAML_BYTES or whose
    aliases would expand past MAX_YAML_NODES *before* building it (the node graph is composed,
    aliases still shared, and its expanded size counted), so a nine-level alias bomb costs
    microseconds, not gigabytes. A syntax error becomes a ConfigError."""
    p = Path(file)
    text = _read_capped(p)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        n = _expanded_nodes(node, {}, set(), str(p))
        if n > MAX_YAML_NODES:
            raise ConfigError(str(p), "", f"expands to {n} YAML nodes through aliases (at most "
                                          f"{MAX_YAML_NODES} allowed); refusing an alias bomb")
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(str(p), where, f"malformed YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(str(p), "", "YAML nested too deeply") from None
    finally:
        loader.dispose()


def _read_capped(p: Path) -> str:
    """The file's text, refusing a non-regular file (a FIFO would hang) or one over the cap."""
    try:
        if not stat.S_ISREG(p.stat().st_mode):  # checked before open: opening a FIFO blocks
            raise HarnessError(f"{p}: not a regular file")
        with open(p, "rb") as f:
            data = f.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise HarnessError(f"{p}: file not found") from None
    except OSError as e:
        raise HarnessError(f"{p}: cannot read ({e.strerror})") from None
    if len(data) > MAX_YAML_BYTES:
        raise ConfigError(str(p), "", f"larger than {MAX_YAML_BYTES} bytes; not a config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(str(p), "", f"not UTF-8 text ({e.reason} at byte {e.start})") from None


def _expanded_nodes(node: yaml.Node, memo: dict[int, int], active: set[int], file: str) -> int:
    """How many nodes the document has once every alias is expanded, counted on the shared graph
    (memoised per node, so linear in the file, whatever the expansion); a cycle is refused."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise ConfigError(file, "", "recursive YAML alias (an anchor that contains itself)")
    active.add(key)
    n = 1
    if isinstance(node, yaml.SequenceNode):
        n += sum(_expanded_nodes(c, memo, active, file) for c in node.value)
    elif isinstance(node, yaml.MappingNode):
        n += sum(_expanded_nodes(k, memo, active, file) + _expanded_nodes(v, memo, active, file)
                 for k, v in node.value)
    active.discard(key)
    memo[key] = n
    return n


class Node:
    """A value plus where it came from (file and key path), with typed accessors that fail clearly."""

    def __init__(self, value: Any, file: str, path: str = ""):
        self.value = value
        self.file = file
        self.path = path

    # -- navigation -------------------------------------------------------------------------
    def fail(self, message: str) -> ConfigError:
        return ConfigError(self.file, self.path or "(top level)", message)

    def _child_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else str(key)

    def mapping(self, allowed: Iterable[str], required: Iterable[str] = ()) -> "Node":
        """Assert this is a mapping with only `allowed` keys and all `required` keys."""
        if not isinstance(self.value, dict):
            raise self.fail(f"expected a mapping, got {_type_name(self.value)}")
        allowed = list(allowed)
        for k in self.value:
            if not isinstance(k, str):
                raise self.fail(f"keys must be strings, got {k!r}")
            if k not in allowed:
                raise Node(None, self.file, self._child_path(k)).fail(
                    f"unknown key; allowed keys here: {', '.join(sorted(allowed))}")
        for k in required:
            if k not in self.value:
                raise self.fail(f"missing required key '{k}'")
        return self

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and key in self.value and self.value[key] is not None

    def get(self, key: str, default: Any = None) -> "Node":
        v = self.value.get(key, default) if isinstance(self.value, dict) else default
        return Node(v, self.file, self._child_path(key))

    def items(self) -> list[tuple[str, "Node"]]:
        if not isinstance(self.value, dict):
            raise self.fail(f"expected a mapping, got {_type_name(self.value)}")
        return [(k, Node(v, self.file, self._child_path(k))) for k, v in self.value.items()]

    def list(self, min_len: int = 0) -> list["Node"]:
        if not isinstance(self.value, list):
            raise self.fail(f"expected a list, got {_type_name(self.value)}")
        if len(self.value) < min_len:
            raise self.fail(f"expected at least {min_len} item(s)")
        return [Node(v, self.file, self._child_path(i)) for i, v in enumerate(self.value)]

    # -- scalars ----------------------------------------------------------------------------
    def str(self, choices: Iterable[str] | None = None) -> str:
        if not isinstance(self.value, str) or not self.value:
            raise self.fail(f"expected a non-empty string, got {_type_name(self.value)}")
        if choices is not None:
            choices = list(choices)
            if self.value not in choices:
                raise self.fail(f"'{self.value}' is not allowed; choose one of: {', '.join(choices)}")
        return self.value

    def int(self, min: int | None = None, max: int | None = None) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.fail(f"expected an integer, got {_type_name(self.value)}")
        _check_range(self, self.value, min, max)
        return self.value

    def float(self, min: float | None = None, max: float | None = None) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise self.fail(f"expected a number, got {_type_name(self.value)}")
        _check_range(self, float(self.value), min, max)
        return float(self.value)

    def bool(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail(f"expected true or false, got {_type_name(self.value)}")
        return self.value

    def str_list(self, choices: Iterable[str] | None = None) -> list[str]:
        """A string or a list of strings, returned as a list."""
        if isinstance(self.value, str):
            return [self.str(choices)]
        return [n.str(choices) for n in self.list(min_len=1)]

    def opt(self, key: str, kind: str, default: Any = None, **kw: Any) -> Any:
        """Optional scalar: `node.opt('rate_hz', 'float', 20.0, min=0.1)`."""
        if not self.has(key):
            return default
        return getattr(self.get(key), kind)(**kw)


def _check_range(node: Node, v: float, lo: float | None, hi: float | None) -> None:
    if lo is not None and v < lo:
        raise node.fail(f"must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise node.fail(f"must be <= {hi}, got {v}")


def _type_name(v: Any) -> str:
    if v is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)
