"""Name resolution, the catalogue, and serialized-config parsing.

Every explicit alias of every scheme is registered under a normalized key: lower case,
separators (``_ - . space``) removed, a trailing ``_`` kept (PyTorch's in-place spelling is
what tells ``orthogonal_`` from Keras's ``orthogonal``). A namespace prefix
(``keras.initializers.``, ``tf.initializers.``, ``torch.nn.init.``, ``jax.nn.initializers.``)
selects that framework's meaning where the bare name is ambiguous (``jax.nn.initializers.
uniform`` is JAX's U[0, scale), bare ``uniform`` is Keras's RandomUniform alias).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from app.initializers.base import Initializer, snake
from app.initializers.errors import InitializerError, UnknownInitializerError
from app.initializers.schemes import SCHEMES

_NAMESPACES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("jax", ("jax.nn.initializers.", "jax.nn.init.", "nn.initializers.")),
    ("torch", ("torch.nn.init.", "nn.init.", "torch.nn.")),
    (
        "keras",
        (
            "tf.keras.initializers.",
            "tensorflow.keras.initializers.",
            "keras.initializers.",
            "keras.",
        ),
    ),
    ("tfjs", ("tf.initializers.", "tf.")),
)
_SEPARATORS = re.compile(r"[\s_\-.]+")
_IGNORED_KEYS = frozenset({"module", "registered_name"})


def _split(name: str) -> tuple[str | None, str]:
    """(namespace or None, normalized key)."""
    text = name.strip()
    lowered = text.lower()
    namespace = None
    for ns, prefixes in _NAMESPACES:
        for prefix in prefixes:
            if lowered.startswith(prefix) and len(text) > len(prefix):
                namespace, text = ns, text[len(prefix) :]
                break
        if namespace:
            break
    torch_style = text.endswith("_")
    key = _SEPARATORS.sub("", text.lower())
    return namespace, key + ("_" if torch_style else "")


@cache
def _tables() -> tuple[dict[str, type[Initializer]], dict[str, dict[str, type[Initializer]]]]:
    general: dict[str, type[Initializer]] = {}
    scoped: dict[str, dict[str, type[Initializer]]] = {ns: {} for ns, _ in _NAMESPACES}

    def register(table: dict[str, type[Initializer]], key: str, cls: type[Initializer]) -> None:
        owner = table.setdefault(key, cls)
        if owner is not cls:
            raise RuntimeError(f"alias key {key!r} claimed by {owner.name} and {cls.name}")

    for cls in SCHEMES:
        for alias in (*cls.aliases, cls.name, cls.class_name()):
            namespace, key = _split(alias)
            if namespace is None:
                register(general, key, cls)
                continue
            register(scoped[namespace], key, cls)
            if namespace == "torch" and key.endswith("_"):
                register(scoped["torch"], key[:-1], cls)
    return general, scoped


def lookup(name: str) -> type[Initializer]:
    """The scheme class a name spelling refers to; UnknownInitializerError otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise InitializerError("name", name, "must be a non-empty string")
    general, scoped = _tables()
    namespace, key = _split(name)
    if namespace is not None and key in scoped[namespace]:
        return scoped[namespace][key]
    if key in general:
        return general[key]
    if key.endswith("_") and key[:-1] in general:
        # "glorot_uniform_" and friends: a trailing underscore on a name that only has one meaning.
        return general[key[:-1]]
    raise UnknownInitializerError(name, _suggest(key))


def _suggest(key: str) -> list[str]:
    general, scoped = _tables()
    keys = {k: cls.name for k, cls in general.items()}
    for table in scoped.values():
        keys.update({k: cls.name for k, cls in table.items()})
    matches = difflib.get_close_matches(key, list(keys), n=6, cutoff=0.6)
    suggestions: list[str] = []
    for match in matches:
        if keys[match] not in suggestions:
            suggestions.append(keys[match])
    return suggestions[:3]


def _reject_seed_object(seed: Any, field: str) -> Any:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InitializerError(field, seed, "must be an integer in [0, 2**32 - 1] or null")
    return seed


def _build(
    cls: type[Initializer], params: Mapping[str, Any], seed: Any, field: str, namespace: str | None
) -> Initializer:
    params = dict(params)
    if (
        namespace == "jax"
        and cls.name == "variance_scaling"
        and isinstance(params.get("distribution"), str)
        and params["distribution"].lower() == "normal"
    ):
        params["distribution"] = "untruncated_normal"  # JAX's "normal" is untruncated
    seed = _reject_seed_object(seed, f"{field}.seed")
    try:
        return cls(params, seed, field=field)
    except InitializerError as exc:
        if exc.field == "seed":
            raise InitializerError(f"{field}.seed", exc.value, exc.msg) from None
        raise


def resolve(ref: str | Mapping[str, Any]) -> Initializer:
    """Resolve any accepted initializer reference to an ``Initializer``.

    Accepted: a name in any framework's spelling; Keras ``{"class_name", "config"}``
    (``module`` and ``registered_name`` ignored); TF.js ``{"className", "config"}`` with
    camelCase keys and values; ``{"name", "params"}`` (an optional ``seed`` beside them or in
    them). A ``seed`` inside the config becomes ``Initializer.seed``.
    """
    if isinstance(ref, str):
        cls = lookup(ref)
        return _build(cls, {}, None, "params", _split(ref)[0])
    if not isinstance(ref, Mapping):
        raise InitializerError(
            "initializer",
            ref,
            "must be a name or an object {class_name, config}, {className, config} or "
            "{name, params}",
        )
    if "class_name" in ref or "className" in ref:
        name_key = "class_name" if "class_name" in ref else "className"
        allowed = {name_key, "config"} | _IGNORED_KEYS
        field = "config"
        params_obj = ref.get("config")
    elif "name" in ref:
        name_key = "name"
        allowed = {"name", "params", "seed"}
        field = "params"
        params_obj = ref.get("params")
    else:
        raise InitializerError(
            "initializer",
            dict(ref),
            "an object reference needs class_name (Keras), className (TF.js) or name",
        )
    for key in ref:
        if key not in allowed:
            raise InitializerError(key, ref[key], f"unknown key; expected {sorted(allowed)}")
    name = ref[name_key]
    if not isinstance(name, str):
        raise InitializerError(name_key, name, "must be a string")
    if params_obj is None:
        params_obj = {}
    if not isinstance(params_obj, Mapping):
        raise InitializerError(field, params_obj, "must be an object")
    params = {snake(str(k)): v for k, v in params_obj.items()}
    seed = params.pop("seed", None)
    if name_key == "name" and ref.get("seed") is not None:
        if seed is not None and seed != ref["seed"]:
            raise InitializerError("seed", ref["seed"], f"conflicts with params.seed = {seed}")
        seed = ref["seed"]
    cls = lookup(name)
    return _build(cls, params, seed, field, _split(name)[0])


def _entry(cls: type[Initializer]) -> dict[str, Any]:
    aliases: list[str] = []
    for alias in (cls.name, *cls.aliases, cls.keras_class or cls.class_name()):
        if alias not in aliases:
            aliases.append(alias)
    return {
        "name": cls.name,
        "aliases": aliases,
        "family": cls.family,
        "params": {p.name: p.describe() for p in cls.PARAMS},
        "formula": cls.formula,
        "description": cls.description,
        "references": list(cls.references),
        "frameworks": dict(cls.frameworks),
        "dtypes": list(cls.dtypes),
        "rank": {"minimum": cls.min_rank, "maximum": cls.max_rank},
        "uses_fans": cls.uses_fans,
        "random": cls.random,
        "keras_compat": cls.keras_class is not None,
    }


@cache
def _catalog() -> tuple[dict[str, Any], ...]:
    return tuple(_entry(cls) for cls in SCHEMES)


def catalog() -> list[dict[str, Any]]:
    """Every scheme as a catalogue entry (the ``GET /v1/initializers`` items)."""
    import copy

    return copy.deepcopy(list(_catalog()))


def describe(name_or_alias: str) -> dict[str, Any]:
    """One catalogue entry by any accepted spelling; UnknownInitializerError otherwise."""
    import copy

    cls = lookup(name_or_alias)
    return copy.deepcopy(next(e for e in _catalog() if e["name"] == cls.name))
