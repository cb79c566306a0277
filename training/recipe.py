"""YAML recipe -> typed dataclasses, in one place. Model code never sees YAML."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from ..align.config import AlignerConfig, AlignerLossConfig
from ..codec.config import CodecConfig
from ..core.config import config_from_dict
from ..core.errors import SonorantError
from ..lm.config import LMConfig
from .config import AlignerTrainConfig, CodecLossConfig, CodecTrainConfig, LMTrainConfig, TrainConfig

R = TypeVar("R", bound="Recipe")


class RecipeError(SonorantError):
    """A recipe that cannot be found or does not match the config dataclasses."""


@dataclass(frozen=True)
class Recipe:
    """One task's recipe: a model section (the model's own config), a train section and, for some tasks, a loss
    section; `kind` names the task in the YAML."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value)
        return out


@dataclass(frozen=True)
class CodecRecipe(Recipe):
    kind: ClassVar[str] = "codec"
    model: CodecConfig
    train: CodecTrainConfig
    loss: CodecLossConfig


@dataclass(frozen=True)
class LMRecipe(Recipe):
    kind: ClassVar[str] = "lm"
    model: LMConfig
    train: LMTrainConfig


@dataclass(frozen=True)
class AlignerRecipe(Recipe):
    kind: ClassVar[str] = "aligner"
    model: AlignerConfig
    train: AlignerTrainConfig
    loss: AlignerLossConfig


def find_recipe(name_or_path: str) -> Path:
    """`--config NAME` finds a shipped recipe in configs/; `--config PATH` a user file."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.name if path.suffix else f"{path.name}.yaml"
    shipped = resources.files("sonorant.configs") / name
    if shipped.is_file():
        return Path(str(shipped))
    available = sorted(p.name.removesuffix(".yaml") for p in resources.files("sonorant.configs").iterdir()
                       if p.name.endswith(".yaml"))
    raise RecipeError(f"no recipe {name_or_path!r}: give a YAML file or one of {', '.join(available)}")


def load_recipe_dict(name_or_path: str) -> dict[str, Any]:
    path = find_recipe(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with model/train/loss sections")
    return data


def codec_recipe(data: dict[str, Any], overrides: dict[str, Any] | None = None) -> CodecRecipe:
    """Build the codec recipe from a recipe mapping; `overrides` update the train section."""
    return build_recipe(CodecRecipe, data, overrides)


def lm_recipe(data: dict[str, Any], overrides: dict[str, Any] | None = None) -> LMRecipe:
    """Build the LM recipe from a recipe mapping; `overrides` update the train section."""
    return build_recipe(LMRecipe, data, overrides)


def aligner_recipe(data: dict[str, Any], overrides: dict[str, Any] | None = None) -> AlignerRecipe:
    """Build the aligner recipe from a recipe mapping; `overrides` update the train section."""
    return build_recipe(AlignerRecipe, data, overrides)


def build_recipe(cls: type[R], data: dict[str, Any], overrides: dict[str, Any] | None) -> R:
    """Recipe `cls` from a mapping: unknown sections, another task's kind (a missing kind means codec) and bad
    keys are RecipeErrors."""
    hints = typing.get_type_hints(cls)
    sections = [f.name for f in dataclasses.fields(cls)]
    kind = data.get("kind", "codec")
    if kind != cls.kind:
        raise RecipeError(f"this is a {kind!r} recipe, not a {cls.kind} recipe (kind: {cls.kind})")
    unknown = set(data) - {"kind", *sections}
    if unknown:
        raise RecipeError(f"unknown {cls.kind} recipe sections: {sorted(unknown)}")
    try:
        model = hints["model"].from_dict(data.get("model") or {})
    except (TypeError, ValueError) as e:
        raise RecipeError(f"model section: {e}") from None
    built = {"model": model, "train": train_config(hints["train"], data, overrides)}
    if "loss" in sections:
        built["loss"] = build(hints["loss"], data.get("loss") or {}, "loss")
    return cls(**built)


# Keys of the train section that were renamed: a recipe using the old name gets told the new one.
RENAMED = {"max_frames": "max_item_frames"}
# Each task's train section, by kind, and the keys any task's section has.
TRAIN_SECTIONS: dict[str, type[TrainConfig]] = {
    r.kind: typing.get_type_hints(r)["train"] for r in (CodecRecipe, LMRecipe, AlignerRecipe)}
TASK_KEYS = {f.name for cls in TRAIN_SECTIONS.values() for f in dataclasses.fields(cls)}


def train_config(cls: type[TrainConfig], data: dict[str, Any], overrides: dict[str, Any] | None) -> Any:
    """The task's train section (`cls`): a key of another task's section, or an old name, is a RecipeError."""
    values = {**(data.get("train") or {}), **(overrides or {})}
    # Runs recorded before the global batch existed say `accumulate: 1`, which is today's default.
    if values.get("accumulate", 1) != 1:
        raise RecipeError("train section: `accumulate` is gone; batch_size (or batch_frames) is the global batch "
                          "and micro_batch_size (or micro_batch_frames) bounds one forward")
    values.pop("accumulate", None)
    fields = {f.name for f in dataclasses.fields(cls)}
    for old, new in RENAMED.items():
        if old in values and old not in fields:
            raise RecipeError(f"train section: `{old}` is now `{new}`")
    foreign = sorted(k for k in values if k not in fields and k in TASK_KEYS)
    if foreign:
        raise RecipeError(f"train section: {', '.join(foreign)} "
                          f"{'does' if len(foreign) == 1 else 'do'} not apply to this task")
    return build(cls, values, "train")


def recorded_recipe(data: dict[str, Any]) -> dict[str, Any]:
    """A run's recorded recipe.yaml brought up to today's sections: runs recorded before each task had its own
    train section carry every task's keys at their defaults (dropped here) and the old names (renamed)."""
    if not isinstance(data, dict):
        return data
    kind = data.get("kind", "codec")
    cls = TRAIN_SECTIONS.get(kind)
    if cls is None or not isinstance(data.get("train"), dict):
        return data
    fields = {f.name for f in dataclasses.fields(cls)}
    train = {}
    for key, value in data["train"].items():
        name = RENAMED.get(key, key)
        if name in fields:
            train[name] = value
        elif name not in TASK_KEYS:
            train[key] = value  # unknown: the builder refuses it
    return {**data, "train": train}


def build(cls: type, values: dict[str, Any], section: str) -> Any:
    """A config dataclass of one recipe section (`core.config.config_from_dict`); a bad key is a RecipeError."""
    try:
        return config_from_dict(cls, values, f"{section} section")
    except (TypeError, ValueError) as e:
        raise RecipeError(str(e)) from None
