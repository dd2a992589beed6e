"""`TrainConfig`: every knob of an SVI training run, loaded from TOML presets plus overrides.

A config is a TOML file whose top-level keys are the fields of :class:`TrainConfig`, with two
tables: ``[model]`` (fields of ``dive_pyro.core.config.DiveConfig``; ``TrainConfig.model`` is that
``DiveConfig``, resolved once on the variant's registered defaults, and saved with every field)
and ``[data]`` (options of ``dive_pyro.data.generate``).
Command-line-style overrides ``key=value`` / ``model.hidden=32`` are typed by the field types;
values are parsed as TOML literals (``lr=3e-4``, ``betas=[0.9,0.999]``, ``clip_norm=none``).

Presets live in ``dive_pyro/presets/*.toml``; :func:`load_config` accepts a preset name or a path.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from dive_pyro.core.config import DiveConfig
from dive_pyro.inference.files import atomic_write_text

__all__ = [
    "TrainConfig",
    "load_config",
    "resolve_model",
    "list_presets",
    "apply_overrides",
    "config_to_dict",
    "config_from_dict",
    "dump_toml",
    "save_config",
    "valid_data_keys",
]

OPTIMIZERS = ("adam", "clipped_adam")
LR_SCHEDULES = ("step", "cosine", "none")
DEVICES = ("cpu", "cuda", "auto")
# keys of `generate` the runner sets itself (per-step seed, batch size, device, split)
RESERVED_DATA_KEYS = ("scenario", "num_sequences", "seed", "device", "split")
# keys that may appear in both [model] and [data]; they must agree (the data are sized for the model)
SHARED_KEYS = ("frame_size", "num_frames", "num_observed", "num_objects")

Schedule = float | list | None  # constant, or piecewise constant [[step, value], ...]


def _schedule(default: Any) -> Any:
    return field(default_factory=lambda: default, metadata={"kind": "schedule"})


@dataclass
class TrainConfig:
    """Resolved settings of one training run (see ``dive_pyro/presets/*.toml`` for examples).

    Run length: ``steps`` if given, else ``epochs * ceil(sequences_per_epoch / global batch)``
    (official: 157 steps per 10,000-sequence epoch at batch 64). ``batch_size`` is per process; with
    ``W`` processes one step sees ``W * batch_size`` sequences and the loss is their summed -ELBO.
    Schedules (``imputation_p``, ``appearance_dropout_p``) are a constant or piecewise-constant
    ``[[first_step, value], ...]``; ``None`` leaves the guide's own value untouched.
    """

    variant: str = "dive"
    # the model's DiveConfig; given as a dict of fields it is resolved on the variant's registered
    # defaults (dive_pyro.inference.resolve_config)
    model: DiveConfig = field(default_factory=dict)
    scenario: str = "occlusion"
    data: dict = field(default_factory=dict)
    batch_size: int = 64
    steps: int | None = None
    epochs: float | None = None
    sequences_per_epoch: int = 10_000
    # optimisation (official: Adam, lr 1e-3, betas (0.5, 0.999), x0.4 at a third of the run)
    optimizer: str = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    clip_norm: float | None = None
    lr_schedule: str = "step"
    lr_decay_factor: float = 0.4  # "step": factor after lr_decay_at; "cosine": final factor
    lr_decay_at: float = 1 / 3  # fraction of the run
    num_particles: int | None = None  # None: the ELBO's own (model.num_particles, default 1)
    # KL annealing: beta(step) rises linearly from kl_start to 1 over kl_warmup_steps
    kl_start: float = 1.0
    kl_warmup_steps: int = 0
    # guide training tricks (official: 0.25 constant; 0.3 -> 0.15 at step 3000)
    imputation_p: Schedule = _schedule(0.25)
    appearance_dropout_p: Schedule = _schedule([[0, 0.3], [3000, 0.15]])
    # run
    device: str = "auto"
    seed: int = 0
    # CPU threads (None: 1 per process on CPU, torch's default on CUDA; a count above the free cores
    # is capped to them, inference/threads.py). Results are bit-for-bit reproducible for a fixed thread
    # count only: torch splits float reductions by thread, so 1 and 2 threads differ in the last
    # bits from step 1 on (a resume with another count is announced)
    num_threads: int | None = None
    out_dir: str = "runs/dive"
    max_seconds: float | None = None  # stop (with a checkpoint) after this much training time
    checkpoint_every: int | None = 500  # steps
    checkpoint_every_s: float | None = 900.0  # seconds
    keep_checkpoints: int = 0  # rotating numbered copies besides checkpoint.pt
    log_every: int = 1
    max_bad_steps: int = 5
    # Pyro/torch distribution argument checks during training steps (off: 1.02-1.04x faster; a NaN
    # parameter still gives a non-finite loss, which skips the step). Evaluation and tests keep them on.
    validate: bool = False
    resume: bool = False
    overwrite: bool = False
    # warm start: a new run (step 0, fresh optimiser and schedules) from the model and guide weights
    # of this checkpoint; the variant and network shapes must match, other model settings may differ.
    # resume=true ignores it (the run's own checkpoint holds its weights by then)
    init_from: str | None = None
    progress: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        hints = _hints()
        for f in dataclasses.fields(self):
            if f.name != "model":
                setattr(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name], f.metadata))
        self.model = resolve_model(self.variant, self.model)
        self._validate()

    # ------------------------------------------------------------------ derived
    def num_steps(self, world_size: int = 1) -> int:
        """Total optimisation steps: ``steps``, else ``epochs`` times ``ceil(sequences_per_epoch / (W *
        batch_size))`` steps per epoch (a last partial batch per epoch, as the official loader)."""
        if self.steps is not None:
            return self.steps
        per_epoch = math.ceil(self.sequences_per_epoch / (self.batch_size * world_size))
        return math.ceil(self.epochs * per_epoch)

    def data_options(self) -> dict:
        """Options for ``generate`` besides scenario/num_sequences/seed: ``data`` plus the keys of
        :data:`SHARED_KEYS` taken from ``model`` when ``data`` does not set them."""
        out = dict(self.data)
        factor = int(out.get("downsample", 1))
        for key in SHARED_KEYS:
            if key not in out:
                # with data.downsample = f the generator draws f-times larger frames
                value = getattr(self.model, key)
                out[key] = value * factor if key == "frame_size" else value
        return out

    # ------------------------------------------------------------------ checks
    def _validate(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"{name} must be {expected}, got {getattr(self, name)!r}")

        for name in ("batch_size", "sequences_per_epoch", "log_every", "max_bad_steps"):
            if getattr(self, name) < 1:
                raise bad(name, "a positive integer")
        if self.num_particles is not None and self.num_particles < 1:
            raise bad("num_particles", "a positive integer or none")
        defaults = resolve_model(self.variant, {})
        for name in ("num_particles", "imputation_p", "appearance_dropout_p"):
            ours = getattr(self.model, name)
            if ours != getattr(defaults, name) and getattr(self, name) is not None:
                raise ValueError(
                    f"{name} is set both at top level ({getattr(self, name)!r}, applied by the trainer) "
                    f"and as model.{name} ({ours!r}); set one of them (top-level "
                    f"{name}=none defers to the model)"
                )
        if self.steps is None and self.epochs is None:
            raise ValueError("set either steps or epochs (steps wins when both are given), got neither")
        if self.steps is not None and self.steps < 1:
            raise bad("steps", "a positive integer")
        if self.epochs is not None and not self.epochs > 0:
            raise bad("epochs", "> 0")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", f"one of {OPTIMIZERS}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", f"one of {LR_SCHEDULES}")
        if self.device not in DEVICES and not re.fullmatch(r"cuda:\d+", self.device):
            raise bad("device", f"one of {DEVICES} or 'cuda:N'")
        if not self.lr > 0:
            raise bad("lr", "> 0")
        if not all(0 <= b < 1 for b in self.betas):
            raise bad("betas", "two numbers in [0, 1)")
        if self.weight_decay < 0:
            raise bad("weight_decay", ">= 0")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise bad("clip_norm", "> 0 or none")
        if not self.lr_decay_factor > 0:
            raise bad("lr_decay_factor", "> 0")
        if not 0 <= self.lr_decay_at <= 1:
            raise bad("lr_decay_at", "a fraction of the run in [0, 1]")
        if not 0 < self.kl_start <= 1:
            raise bad("kl_start", "in (0, 1] (poutine scales must be positive)")
        if self.kl_warmup_steps < 0:
            raise bad("kl_warmup_steps", ">= 0")
        if not 0 <= self.seed < 2**32:
            raise bad("seed", "an integer in [0, 2**32 - 1] (numpy's and Pyro's seed range)")
        if self.num_threads is not None and self.num_threads < 1:
            raise bad("num_threads", "a positive integer or none")
        for name in ("checkpoint_every", "checkpoint_every_s", "max_seconds"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise bad(name, "> 0 or none")
        if self.keep_checkpoints < 0:
            raise bad("keep_checkpoints", ">= 0")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite are both true; choose one (resume continues, overwrite restarts)")
        reserved = sorted(set(self.data) & set(RESERVED_DATA_KEYS))
        if reserved:
            raise ValueError(
                f"data.{reserved[0]} is set by the runner (scenario, batch_size, seed, device, split are "
                f"top-level settings); remove it from [data]"
            )
        valid = _known_data_keys(self.scenario)  # None: a scenario of the caller's own batch_fn (fit)
        unknown = sorted(set(self.data) - set(valid or self.data))
        if unknown:
            raise ValueError(
                f"unknown data key {unknown[0]!r} for scenario {self.scenario!r}; valid data keys: {', '.join(valid)}"
            )
        factor = self.data.get("downsample", 1)
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"data.downsample must be a positive integer, got {factor!r}")
        for key in SHARED_KEYS:
            expected = getattr(self.model, key) * (factor if key == "frame_size" else 1)
            if key in self.data and expected != self.data[key]:
                raise ValueError(
                    f"data.{key} = {self.data[key]!r} disagrees with model.{key} = {getattr(self.model, key)!r} "
                    f"(data.downsample = {factor}); "
                    "set it once, in [model]"
                )


def _known_data_keys(scenario: str) -> list[str] | None:
    try:
        return valid_data_keys(scenario)
    except ValueError:
        return None


def valid_data_keys(scenario: str) -> list[str]:
    """The keys ``[data]`` accepts for ``scenario``: ``downsample`` plus the Moving-MNIST generator's
    settings (``dive_pyro.data.moving_mnist.generator_keys``) or, for real video, the source keys and
    the window builder's (``dive_pyro.data.mots.build_sequences``)."""
    import inspect

    from dive_pyro.data.moving_mnist import SCENARIOS, generator_keys
    from dive_pyro.inference.data_sources import REAL_SCENARIOS, SOURCE_KEYS

    if scenario in REAL_SCENARIOS:
        from dive_pyro.data.mots import build_sequences

        built = [k for k in inspect.signature(build_sequences).parameters if k not in ("seq", "seed")]
        keys = [*SOURCE_KEYS, *built]
    elif scenario in SCENARIOS:
        keys = list(generator_keys(scenario))
    else:
        raise ValueError(f"scenario must be one of {[*SCENARIOS, *REAL_SCENARIOS]}, got {scenario!r}")
    return ["downsample", *keys]


def resolve_model(variant: str, model: DiveConfig | dict) -> DiveConfig:
    """``model`` as a :class:`DiveConfig`: a dict's keys checked and typed, then laid over the
    registered defaults of ``variant`` (plain ``DiveConfig`` defaults for an unregistered one,
    e.g. a model passed to ``fit`` directly)."""
    if isinstance(model, DiveConfig):
        return model
    if not isinstance(model, dict):
        raise TypeError(f"model must be a DiveConfig or a dict of its fields, got {type(model).__name__}")
    from dive_pyro.inference.registry import resolve_config, variant_names

    model = _check_model_keys(model, "model")
    return resolve_config(variant, **model) if variant in variant_names() else DiveConfig(**model)


# --------------------------------------------------------------------------- typing
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _coerce(name: str, value: Any, tp: Any, metadata: Any = None) -> Any:
    """Check ``value`` against type ``tp`` (int -> float allowed, lists -> tuples); raise naming ``name``."""
    if metadata and metadata.get("kind") == "schedule":
        return _coerce_schedule(name, value)
    optional, tp = _is_optional(tp)
    if optional and isinstance(value, str) and value.strip().lower() == "none":
        value = None  # TOML has no null: files write "none"
    if value is None:
        if optional:
            return None
        raise TypeError(f"{name} must not be none (expected {getattr(tp, '__name__', tp)})")
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, list | tuple) and len(value) == len(args):
            return tuple(_coerce(f"{name}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args, strict=True)))
    elif tp is list or origin is list:
        if isinstance(value, list | tuple):
            return list(value)
    else:  # pragma: no cover - a field type this function does not know
        return value
    expected = getattr(tp, "__name__", str(tp)) + (" or none" if optional else "")
    raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")


def _coerce_schedule(name: str, value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = float(value)
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        return value
    err = ValueError(
        f"{name} must be a probability, none, or [[first_step, probability], ...] with increasing "
        f"steps starting at 0, got {value!r}"
    )
    if not isinstance(value, list | tuple) or not value:
        raise err
    out, last = [], -1
    for item in value:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise err
        step, p = item
        if isinstance(step, bool) or not isinstance(step, int) or step <= last:
            raise err
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
            raise err
        out.append([step, float(p)])
        last = step
    if out[0][0] != 0:
        raise err
    return out


# --------------------------------------------------------------------------- dict / TOML
def config_to_dict(config: TrainConfig) -> dict:
    """Plain nested dict (lists, no tuples) — safe for JSON, TOML and ``torch.load(weights_only=True)``."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, DiveConfig):
            return plain(dataclasses.asdict(v))
        return v

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _valid_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def config_from_dict(values: dict, *, source: str = "config") -> TrainConfig:
    """Build a :class:`TrainConfig` from a dict; unknown keys raise ``ValueError`` listing valid ones."""
    unknown = sorted(set(values) - set(_valid_keys()))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in {source}; valid keys: {', '.join(_valid_keys())}")
    values = dict(values)
    if isinstance(values.get("model"), dict):
        values["model"] = _check_model_keys(values["model"], source)
    return TrainConfig(**values)


def _check_model_keys(model: dict, source: str) -> dict:
    hints = typing.get_type_hints(DiveConfig)
    out = {}
    for key, value in model.items():
        if key not in hints:
            raise ValueError(f"unknown model key {key!r} in {source}; valid model keys: {', '.join(hints)}")
        out[key] = _coerce(f"model.{key}", value, hints[key])
    return out


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_value(key)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} value {v!r} to TOML")


def dump_toml(values: dict) -> str:
    """Write a dict of scalars, lists and (one level of) tables as TOML; top-level ``None`` values are
    written as ``"none"`` (TOML has no null; :class:`TrainConfig` reads it back as ``None``), ``None``
    inside tables is omitted."""
    lines, tables = [], []
    for key, v in values.items():
        if v is None:
            lines.append(f'{_toml_key(key)} = "none"')
        elif isinstance(v, dict):
            tables.append((key, v))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(v)}")
    for key, table in tables:
        lines.append(f"\n[{_toml_key(key)}]")
        lines.extend(f"{_toml_key(str(k))} = {_toml_value(x)}" for k, x in table.items() if x is not None)
    return "\n".join(lines) + "\n"


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as TOML, atomically (``load_config(path)`` reads it back unchanged)."""
    return atomic_write_text(path, "# resolved dive-pyro training config\n" + dump_toml(config_to_dict(config)))


# --------------------------------------------------------------------------- presets, overrides
def list_presets() -> list[str]:
    """Names of the bundled presets (``dive_pyro/presets/*.toml``)."""
    folder = resources.files("dive_pyro") / "presets"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def _read_toml(preset_or_path: str | Path) -> tuple[dict, str]:
    text = str(preset_or_path)
    if text in list_presets():
        res = resources.files("dive_pyro") / "presets" / f"{text}.toml"
        source, content = f"preset {text!r}", res.read_text()
    else:
        path = Path(preset_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"no preset or config file named {text!r}; presets: {', '.join(list_presets())}")
        source, content = str(path), path.read_text()
    try:
        return tomllib.loads(content), source
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source} is not valid TOML: {exc}") from exc


def _parse_literal(text: str) -> Any:
    if text.strip().lower() in ("none", "null"):
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(values: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``key=value`` / ``model.key=value`` / ``data.key=value`` strings to a config dict."""
    hints = _hints()
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. lr=3e-4 or model.hidden=32)")
        key, raw = (s.strip() for s in item.split("=", 1))
        head, _, sub = key.partition(".")
        if head not in hints:
            raise ValueError(f"unknown key {head!r} in override {item!r}; valid keys: {', '.join(hints)}")
        value = _parse_literal(raw)
        if sub:
            if head not in ("model", "data"):
                raise ValueError(f"override {item!r}: only model.* and data.* keys may be dotted")
            table = dict(out.get(head) or {})
            table[sub] = value
            out[head] = table
            continue
        optional, tp = _is_optional(hints[head])
        if tp is str and not (optional and value is None) and not isinstance(value, str):
            value = raw  # e.g. out_dir=2024 and lr_schedule=none stay strings
        out[head] = value
    return out


def load_config(preset_or_path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Load a preset name (see :func:`list_presets`) or TOML path, apply ``overrides``, and validate.

    ``preset_or_path=None`` starts from the dataclass defaults (which then need ``steps=`` or
    ``epochs=``).
    """
    values, source = ({}, "defaults") if preset_or_path is None else _read_toml(preset_or_path)
    values = apply_overrides(values, overrides)
    try:
        return config_from_dict(values, source=source)
    except TypeError as exc:
        raise TypeError(f"{exc} (in {source}{' with overrides' if overrides else ''})") from exc
