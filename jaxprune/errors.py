"""Refusals as data: the error that validation raises, with the field, the value and the
arguments it suggests, so that each front end writes them in its own names (the API's, or the
command line's flags; see `jaxprune.cli.error_line`). Imports nothing heavy: the command line
reads it without JAX."""

from __future__ import annotations

import dataclasses
from typing import Any

MENTION = object()  # an Option that names an argument without a value


@dataclasses.dataclass(frozen=True)
class Option:
    """An argument an error's text refers to: mentioned (`Option("out")`: "`out`", on the
    command line "--out"), or to be passed (`Option("overwrite", True)`: "pass overwrite=True",
    "pass --overwrite"; a value of None: "pass chunk_size=None", "leave out --chunk-size").
    verb: the word before a passed value ("" for none). quoted: a mention in backquotes."""

    name: str
    value: Any = MENTION
    verb: str = "pass"
    quoted: bool = True

    def render(self, flags: dict[str, str]) -> str:
        """The option in the API's words, or the command line's where `flags` names it."""
        flag = flags.get(self.name)
        if self.value is MENTION:
            return flag or (f"`{self.name}`" if self.quoted else self.name)
        if flag is None:
            return f"{self.verb} {self.name}={self.value!r}".strip()
        if self.value is None:
            return f"leave out {flag}"
        shown = flag if self.value is True else f"{flag} {self.value}"
        return f"{self.verb} {shown}".strip()


class InvalidValue(ValueError):
    """A refused value, as data: `field` (an argument's name, 'chunk_size', or a field's, with
    `owner` 'Config' or 'Params'; None when the subject is not one value), `value`, and
    `problem`: what is wrong and allowed, whose {0}, {1}, ... stand for `options` (see
    `Option`). str(error) is one line in the API's names; `render(flags)` writes the
    arguments that `flags` maps (API name -> command-line flag) as flags instead."""

    def __init__(self, field: str | None, value: Any, problem: str, *options: Option,
                 owner: str | None = None):  # fmt: skip
        self.field, self.value, self.problem = field, value, problem
        self.options, self.owner = options, owner
        super().__init__(self.render())

    def render(self, flags: dict[str, str] | None = None) -> str:
        flags = {} if flags is None or self.owner else flags
        text = self.problem
        for i, option in enumerate(self.options):
            text = text.replace(f"{{{i}}}", option.render(flags))
        if self.field is None:
            return text
        if self.field in flags:
            shown = "" if self.value is True else f" {self.value}"
            return f"{flags[self.field]}{shown} {text}"
        prefix = f"{self.owner}." if self.owner else ""
        if self.value is True and not self.owner:  # a flag's form: log1mp=True
            return f"{prefix}{self.field}=True {text}"
        return f"{prefix}{self.field} = {self.value!r} {text}"
