"""Model keyword types from a factory's annotations (or, without one, its default's type).

A sweep file or `--model-kwargs` hands over plain literals (numbers, strings, booleans, lists);
these checks make sure each one is what the network's code expects before any run starts, so a
string never reaches arithmetic that wanted a number.
"""
import collections.abc
import re
import types
import typing

ANY = None  # no annotation and no default to judge by: any literal passes

_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
          dict: "a table", type(None): "None"}
_PLURAL = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
_SEQUENCES = (tuple, list, collections.abc.Sequence)


def from_default(default):
    """The type a keyword without an annotation takes, judged by its default."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float, str)):
        return type(default)
    if isinstance(default, (tuple, list)) and default:
        kinds = {from_default(x) for x in default}
        inner = kinds.pop() if len(kinds) == 1 else (float if kinds <= {int, float} else ANY)
        return ANY if inner is ANY else tuple[inner, ...]
    return ANY


def _union_args(ann):
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return typing.get_args(ann)
    return None


def conforms(value, ann):
    """Whether `value` (a plain literal) is acceptable for annotation `ann`."""
    if ann is ANY or ann is typing.Any or isinstance(ann, str):  # an unresolvable string: pass
        return True
    union = _union_args(ann)
    if union is not None:
        return any(conforms(value, a) for a in union)
    if ann is None or ann is type(None):
        return value is None
    if ann is bool:
        return isinstance(value, bool)
    if ann is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if ann is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Literal:
        return value in args
    if ann in _SEQUENCES or origin in _SEQUENCES:
        return isinstance(value, (tuple, list)) and _items_conform(value, origin or ann, args)
    if isinstance(ann, type):
        return isinstance(value, ann)
    return True  # an annotation this checker does not understand: the factory decides


def canonical(value, ann):
    """`value` spelt the one way its annotation reads it: a whole number where a float is taken becomes
    that float, in a list of them too, so `width=1` and `width=1.0` are one configuration, not two.
    Where the annotation takes the value both ways (int | float) it stays as given."""
    if isinstance(value, bool) or ann is ANY or isinstance(ann, str):
        return value
    union = _union_args(ann)
    if union is not None:
        fits = [a for a in union if conforms(value, a)]
        return canonical(value, fits[0]) if len(fits) == 1 else value
    if ann is float:
        return float(value) if isinstance(value, int) and abs(value) < 2 ** 1023 else value
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if not (args and isinstance(value, (tuple, list)) and (ann in _SEQUENCES or origin in _SEQUENCES)):
        return value
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        return [canonical(v, a) for v, a in zip(value, args)] if len(value) == len(args) else value
    return [canonical(v, args[0]) for v in value]


def _items_conform(value, origin, args):
    if not args:
        return True
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        return len(value) == len(args) and all(conforms(v, a) for v, a in zip(value, args))
    return all(conforms(v, args[0]) for v in value)


def describe(ann):
    """In words, for an error message: 'an integer', 'a list of integers', ..."""
    if ann is ANY or ann is typing.Any or isinstance(ann, str):
        return "any value"
    union = _union_args(ann)
    if union is not None:
        return " or ".join(describe(a) for a in union)
    if ann is None:
        return "None"
    if ann in _WORDS:
        return _WORDS[ann]
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if ann in _SEQUENCES or origin in _SEQUENCES:
        inner = args[0] if args else ANY
        return f"a list of {_PLURAL.get(inner, 'values')}"
    return f"a {getattr(ann, '__name__', str(ann))}"


def short(ann):
    """Compact, Python-like, for the `bench models` table: 'int', 'tuple[int, ...]'."""
    if ann is ANY:
        return "any"
    if isinstance(ann, type) and not typing.get_args(ann):
        return ann.__name__
    if typing.get_origin(ann) is typing.Literal:  # 'a'|'b': Literal['a', 'b'] would crowd the table
        return "|".join(repr(a) for a in typing.get_args(ann))
    # module paths dropped: Optional[torchvision.models.resnet.ResNet18_Weights] -> Optional[ResNet18_Weights]
    return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", str(ann))
