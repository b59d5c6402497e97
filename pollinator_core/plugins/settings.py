"""Plugin settings: typed, with defaults and one-line docs, from four places, checked strictly.

A plugin declares its settings as an attrs class whose fields are made with :func:`setting`, and
registers it as a :class:`SettingsSection` named for the plugin (``local``, ``slurm``, ``k8s``)
through the ``pollinator_register_settings`` hook. Values come from, weakest first:

1. the defaults;
2. the project.yaml section of that name (``slurm: {partition: gpu}``);
3. environment variables ``POLLINATOR_<SECTION>_<KEY>``, for daemons
   (``POLLINATOR_SLURM_PARTITION``);
4. command-line options (``pollinator executor start --type slurm -s partition=gpu``, and
   ``pollinator run -s slurm.partition=gpu``).

Every source goes through the same checks as the rest of project.yaml: an unknown key is an
error with a did-you-mean (and the line, for project.yaml), a wrong type or a value outside its
choices says what is accepted.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import attrs

from pollinator_core.errors import UsageError
from pollinator_core.project.loader import Section

S = TypeVar("S")
_META = "pollinator"


@attrs.frozen
class SettingInfo:
    help: str
    choices: tuple[str, ...] = ()
    #: turns what a user wrote (a project.yaml value or option text) into the value, raising
    #: ValueError with the accepted forms; for durations, sizes and the like
    parse: Callable[[object], object] | None = None


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] = (),
    parse: Callable[[object], object] | None = None,
) -> Any:
    """A settings field: its default, one line of documentation, and optionally the allowed
    values or a parser (``pollinator_core.api.parse_duration``)."""
    info = SettingInfo(help, choices, parse)
    if isinstance(default, list | dict):
        raise TypeError("use a tuple for a list setting; settings are immutable")
    return attrs.field(default=default, metadata={_META: info})


@attrs.frozen
class SettingsSection(Generic[S]):
    """A plugin's settings: ``name`` is the project.yaml section and the option prefix."""

    name: str
    schema: type[S]
    help: str = ""

    def fields(self) -> dict[str, tuple[attrs.Attribute[Any], SettingInfo]]:
        out = {}
        hints = typing.get_type_hints(self.schema)
        for field in attrs.fields(self.schema):  # type: ignore[arg-type]
            info = field.metadata.get(_META)
            if not isinstance(info, SettingInfo):
                raise TypeError(f"{self.schema.__name__}.{field.name} is not made with setting()")
            out[field.name] = (field.evolve(type=hints.get(field.name, field.type)), info)
        return out

    def env_name(self, key: str) -> str:
        return f"POLLINATOR_{self.name}_{key}".upper().replace("-", "_")

    def defaults(self) -> S:
        return self.schema()

    def load(
        self,
        project: Section | None = None,
        options: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> S:
        """The settings from project.yaml's section, the environment and the options."""
        fields = self.fields()
        values: dict[str, Any] = {}
        if project is not None:
            for key, value in project.values.items():
                where = f"{project.where(key)}: {self.name}.{key}"
                values[key] = self._convert(fields, key, value, where, text=False)
        env = os.environ if env is None else env
        for key in fields:
            name = self.env_name(key)
            if name in env:
                values[key] = self._convert(fields, key, env[name], f"${name}", text=True)
        for key, value in (options or {}).items():
            values[key] = self._convert(fields, key, value, f"option {self.name}.{key}", text=True)
        return self.schema(**values)

    def _convert(
        self,
        fields: Mapping[str, tuple[attrs.Attribute[Any], SettingInfo]],
        key: str,
        value: object,
        where: str,
        *,
        text: bool,
    ) -> object:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            known = ", ".join(fields) or "none"
            raise UsageError(
                f"{where}: unknown setting {key!r} of {self.name}.{hint} Known settings: {known}."
            )
        field, info = fields[key]
        try:
            converted = _coerce(field.type, info, value, text=text)
        except ValueError as exc:
            raise UsageError(f"{where}: {exc}") from None
        if info.choices and converted not in info.choices:
            raise UsageError(f"{where}: must be one of {', '.join(info.choices)}, got {value!r}.")
        return converted


def _coerce(kind: Any, info: SettingInfo, value: object, *, text: bool) -> object:
    if info.parse is not None:
        return info.parse(value)
    origin = typing.get_origin(kind)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if text and str(value).strip().lower() in {"true", "1", "yes", "on"}:
            return True
        if text and str(value).strip().lower() in {"false", "0", "no", "off", ""}:
            return False
        raise ValueError(f"must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if text:
            try:
                return int(str(value).strip())
            except ValueError:
                pass
        raise ValueError(f"must be a whole number, got {value!r}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if text:
            try:
                return float(str(value).strip())
            except ValueError:
                pass
        raise ValueError(f"must be a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"must be text, got {value!r}; quote it")
    if origin is tuple:
        if text and isinstance(value, str):
            items: list[object] = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, list):
            items = list(value)
        else:
            raise ValueError(f"must be a list, got {value!r}")
        if not all(isinstance(i, str) for i in items):
            raise ValueError(f"must be a list of text, got {value!r}")
        return tuple(items)
    raise TypeError(
        f"settings of type {kind!r} are not supported; use str, int, float, bool, tuple[str, ...]"
    )


def describe(section: SettingsSection[Any]) -> list[tuple[str, str, str]]:
    """(key, default, help) for each setting: what ``pollinator plugins`` shows."""
    rows = []
    defaults = section.defaults()
    for key, (_, info) in section.fields().items():
        default = getattr(defaults, key)
        shown = ",".join(default) if isinstance(default, tuple) else str(default)
        extra = f" ({' | '.join(info.choices)})" if info.choices else ""
        rows.append((key, shown, info.help + extra))
    return rows


def parse_options(
    pairs: tuple[str, ...], *, section: str | None = None
) -> dict[str, dict[str, str]]:
    """``-s`` options (``KEY=VALUE``, or ``SECTION.KEY=VALUE`` when no section is implied) by
    section."""
    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-s {pair!r}: write KEY=VALUE, e.g. -s partition=debug.")
        key = key.strip()
        name = section
        if name is None or "." in key:
            name, dot, key = key.partition(".")
            if not dot:
                raise UsageError(
                    f"-s {pair!r}: name the plugin's section, e.g. -s slurm.{key}={value}."
                )
        out.setdefault(name, {})[key] = value
    return out
