"""Building a frozen dataclass from a config mapping, naming the offending key on error.

Methods (their Params), tasks (their data and evaluation configs) and the trainer (Schedule)
all declare their options as dataclasses; this is the one place that turns a YAML mapping
into one, so every unknown key and every invalid value is reported the same way.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping


def dataclass_from(cls: type, values: Mapping | None, key: str, aliases: Mapping[str, str] | None = None):
    """`cls(**values)` with lists made tuples; ValueError naming `key` (and the field) on error.

    `aliases` maps config names to field names (e.g. the paper's `lambda`, a Python keyword).
    """
    aliases = aliases or {}
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in (values or {}).items():
        field = aliases.get(name, name)
        if field not in fields:
            known = sorted({aliases.get(f, f) for f in fields} | set(aliases))
            raise ValueError(f"{key}.{name}: unknown parameter for {cls.__module__}.{cls.__qualname__}; known: {known}")
        kwargs[field] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        # A check in __post_init__ that names its field ("runs[2]: ...", "pipelines.run: ...")
        # joins the key as one dotted path, so the message names the exact config key.
        message = str(err)
        head = re.match(r"[A-Za-z_]\w*", message)
        names_field = head and head.group() in fields and message[head.end() :][:1] in (".", "[", ":")
        raise ValueError(f"{key}{'.' if names_field else ': '}{message}") from err
