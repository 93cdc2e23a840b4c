"""YAML → plain Python, remembering where every key and value came from.

PyYAML's composer gives nodes with start marks; we build the data ourselves so that we can
refuse what a policy never needs (aliases, merge keys, custom tags, duplicate keys, non-string
keys) and point every later error at a line and column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

Path_ = tuple[str | int, ...]

# libyaml's loader composes the same nodes (with marks) about ten times faster
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_DEPTH = 32
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based

    @classmethod
    def of(cls, mark: yaml.Mark | None) -> Position:
        if mark is None:
            return cls(1, 1)
        return cls(mark.line + 1, mark.column + 1)


class YamlShapeError(Exception):
    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.position = position


@dataclass
class LocatedDocument:
    data: Any
    values: dict[Path_, Position] = field(default_factory=dict)
    keys: dict[Path_, Position] = field(default_factory=dict)

    def position(self, path: Path_, *, key: bool = False) -> Position:
        """Where ``path`` is (its key when ``key``), or the nearest enclosing node."""
        table = self.keys if key else self.values
        if path in table:
            return table[path]
        while path:
            path = path[:-1]
            if path in self.values:
                return self.values[path]
        return Position(1, 1)


class _Builder:
    def __init__(self) -> None:
        self.constructor = SafeConstructor()
        self.seen: set[int] = set()
        self.doc = LocatedDocument(None)

    def build(self, node: yaml.Node, path: Path_) -> Any:
        where = Position.of(node.start_mark)
        if id(node) in self.seen:
            raise YamlShapeError("YAML anchors and aliases are not allowed in policy files", where)
        self.seen.add(id(node))
        if len(path) > MAX_DEPTH:
            raise YamlShapeError(f"nesting deeper than {MAX_DEPTH} levels", where)
        self.doc.values[path] = where
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                raise YamlShapeError(f"unsupported YAML tag {node.tag}", where)
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, where)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        if node.tag != _MAP:
            raise YamlShapeError(f"unsupported YAML tag {node.tag}", Position.of(node.start_mark))
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_where = Position.of(key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise YamlShapeError("YAML merge keys (<<) are not allowed", key_where)
                raise YamlShapeError("mapping keys must be plain strings", key_where)
            key = str(key_node.value)
            if key in out:
                raise YamlShapeError(f"duplicate key {key!r}", key_where)
            self.doc.keys[(*path, key)] = key_where
            out[key] = self.build(value_node, (*path, key))
        return out

    def _scalar(self, node: yaml.ScalarNode, where: Position) -> Any:
        tag = node.tag
        if tag == _STR or tag == "tag:yaml.org,2002:timestamp":
            return str(node.value)  # dates stay text: the policy layer parses them strictly
        try:
            if tag == "tag:yaml.org,2002:null":
                return None
            if tag == "tag:yaml.org,2002:bool":
                return self.constructor.construct_yaml_bool(node)
            if tag == "tag:yaml.org,2002:int":
                return self.constructor.construct_yaml_int(node)
            if tag == "tag:yaml.org,2002:float":
                return self.constructor.construct_yaml_float(node)
        except (ValueError, OverflowError, yaml.YAMLError):
            raise YamlShapeError(f"cannot read the value {node.value!r}", where) from None
        raise YamlShapeError(f"unsupported YAML tag {tag}", where)


def load_located(text: str) -> LocatedDocument:
    """Parse one YAML document; raise ``YamlShapeError`` (with a position) on anything else."""
    loader: yaml.SafeLoader | None = None
    try:
        loader = _Loader(text)  # the reader refuses control characters right here
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        raise YamlShapeError(f"invalid YAML: {problem}", Position.of(mark)) from None
    except yaml.YAMLError as exc:
        raise YamlShapeError(f"invalid YAML: {exc}", Position(1, 1)) from None
    except RecursionError:
        raise YamlShapeError("invalid YAML: nested too deeply", Position(1, 1)) from None
    finally:
        if loader is not None:
            loader.dispose()
    builder = _Builder()
    if node is None:
        raise YamlShapeError("the policy file is empty", Position(1, 1))
    builder.doc.data = builder.build(node, ())
    return builder.doc
