"""dive_pyro.inference: where model and guide meet -- the variant registry (``build``), SVI
training (configs, presets, checkpoints, multi-process, schedules), posterior draws and scoring
of a trained model."""

from dive_pyro.inference.anneal import KLAnneal, kl_beta, lr_factor, schedule_value
from dive_pyro.inference.checkpoint import (
    CHECKPOINT_NAME,
    check_compatible,
    check_variant,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from dive_pyro.inference.compare import Comparison, compare
from dive_pyro.inference.config import (
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    list_presets,
    load_config,
    save_config,
)
from dive_pyro.inference.distributed import DistContext, all_reduce_grads, setup_distributed
from dive_pyro.inference.files import DiskFullError, RunFolderBusyError, RunLock
from dive_pyro.inference.posterior import PosteriorMean, missing_probability, reconstruct, sample_posterior
from dive_pyro.inference.progress import plot_elbo, read_log
from dive_pyro.inference.registry import Variant, build, register_variant, resolve_config, variant_names
from dive_pyro.inference.train import (
    TrainingDivergedError,
    TrainResult,
    build_from_config,
    default_batch_fn,
    derive_seed,
    fit,
    local_params,
    resolve_device,
    train,
)
from dive_pyro.inference.trained import (
    TrainedModel,
    evaluate_trained,
    fixed_test_set_for,
    load_trained,
    shipped_checkpoint,
)

__all__ = [
    "Comparison",
    "PosteriorMean",
    "TrainedModel",
    "compare",
    "evaluate_trained",
    "fixed_test_set_for",
    "load_trained",
    "shipped_checkpoint",
    "Variant",
    "build",
    "missing_probability",
    "reconstruct",
    "register_variant",
    "resolve_config",
    "sample_posterior",
    "variant_names",
    "CHECKPOINT_NAME",
    "DiskFullError",
    "DistContext",
    "KLAnneal",
    "RunFolderBusyError",
    "RunLock",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "all_reduce_grads",
    "apply_overrides",
    "build_from_config",
    "check_compatible",
    "check_variant",
    "config_from_dict",
    "config_to_dict",
    "default_batch_fn",
    "derive_seed",
    "fit",
    "get_rng_state",
    "kl_beta",
    "list_presets",
    "load_checkpoint",
    "load_config",
    "local_params",
    "lr_factor",
    "plot_elbo",
    "read_log",
    "resolve_device",
    "save_checkpoint",
    "save_config",
    "schedule_value",
    "set_rng_state",
    "setup_distributed",
    "train",
]
