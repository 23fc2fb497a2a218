"""Derived parameters: Params fields computed from a run's other fields by arithmetic expressions.

A sweep's `derived` maps a Params field to an expression, a string such as
"0.5 / (sigma_noise**2 * dim)". An expression may use numbers, + - * / ** and unary -,
parentheses, the functions sqrt, exp, log, log10, abs, minimum and maximum (NumPy's), the
constants pi and e, and names: the run's Config fields (numbers only; a shape field is the run's
own value, not its bucket's), its Params fields other than derived ones, and the grid's
variables (grid axes that are no field, such as a benign score, written as columns too).
Expressions are parsed with `ast` and evaluated by walking the tree over NumPy arrays: nothing
else runs. They are JSON strings, so a sweep's spec (and its hash) records them.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping

import numpy as np

FUNCTIONS = {
    "sqrt": np.sqrt,
    "exp": np.exp,
    "log": np.log,
    "log10": np.log10,
    "abs": np.abs,
    "minimum": np.minimum,
    "maximum": np.maximum,
}
CONSTANTS = {"pi": np.pi, "e": np.e}
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, ast.Constant, ast.Call,
          ast.operator, ast.unaryop)  # fmt: skip
ALLOWED = (
    "numbers, + - * / ** and parentheses, field and grid-variable names, the constants pi and e, "
    f"and the functions {', '.join(FUNCTIONS)}"
)


def _refuse(target: str, expression: str, what: str) -> ValueError:
    return ValueError(
        f"derived[{target!r}] = {expression!r} is invalid: {what}; an expression may use "
        f"{ALLOWED}."
    )


def parse(target: str, expression) -> ast.Expression:
    """The syntax tree of one expression, checked to hold only what `ALLOWED` names."""
    if not isinstance(expression, str):
        raise _refuse(target, expression, "must be a string")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise _refuse(target, expression, "it is no Python expression") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise _refuse(target, expression, f"{node.value!r} is no number")
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in FUNCTIONS or node.keywords:
                raise _refuse(target, expression, f"{ast.unparse(node.func)}(...) is not allowed")
        elif isinstance(node, ast.BinOp) and type(node.op) not in _BINARY:
            raise _refuse(target, expression, f"the operator of {ast.unparse(node)!r}")
        elif isinstance(node, ast.UnaryOp) and type(node.op) not in _UNARY:
            raise _refuse(target, expression, f"the operator of {ast.unparse(node)!r}")
        elif not isinstance(node, _NODES):
            raise _refuse(target, expression, f"{ast.unparse(node)!r} is not allowed")
    return tree


def names(tree: ast.Expression) -> list[str]:
    """The variable names an expression uses (not its functions or constants), in order."""
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    found = [
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and id(node) not in called and node.id not in CONSTANTS
    ]
    return list(dict.fromkeys(found))


def evaluate(tree: ast.Expression, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """The expression's value over `values` (name -> float64 array (N,) or scalar)."""

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            return np.float64(node.value)
        if isinstance(node, ast.Name):
            return CONSTANTS[node.id] if node.id in CONSTANTS else values[node.id]
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](walk(node.operand))
        return FUNCTIONS[node.func.id](*(walk(a) for a in node.args))

    with np.errstate(all="ignore"):  # a bad value is refused by the caller, naming it
        return np.asarray(walk(tree), np.float64)


def normalize(derived, params_fields, numeric_config_fields, grid_keys) -> dict[str, str]:
    """Check a sweep's `derived` mapping (Params field -> expression) before anything runs:
    targets are Params fields not in the grid, expressions parse (`parse`), and every name is
    a numeric Config field, a Params field that is not derived, or a grid axis. Returns it as a
    plain dict (JSON for the spec)."""
    if derived is None:
        return {}
    if not isinstance(derived, Mapping):
        raise ValueError(
            f"derived = {derived!r} is invalid: must be a mapping of Params field to expression."
        )
    known = {*params_fields, *numeric_config_fields, *grid_keys}
    for target, expression in derived.items():
        if target not in params_fields:
            raise ValueError(
                f"derived key {target!r} is invalid: must be a Params field "
                f"({', '.join(params_fields)})."
            )
        if target in grid_keys:
            raise ValueError(
                f"derived[{target!r}] is invalid: {target} is in the grid too; give it one way."
            )
        for name in names(parse(target, expression)):
            if name in derived:
                raise _refuse(target, expression, f"{name} is derived itself")
            if name not in known:
                raise _refuse(target, expression, f"{name!r} is no field and no grid axis")
    return {str(target): str(expression) for target, expression in derived.items()}
