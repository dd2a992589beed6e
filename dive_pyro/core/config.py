"""`DiveConfig`: every size and hyper-parameter of the DIVE model, guide and ELBO.

Defaults are the paper's / official code's Moving-MNIST settings; each line names its source:
the paper (section / equation) or ``[oc §N]`` = section N of ``docs/official_code.md``, which gives
the official code's file and line (github.com/Rose-STL-Lab/DIVE at commit 9db175b).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["DiveConfig", "KERNELS", "LIKELIHOODS", "MISSINGNESS_MODES", "PREDICT_INITS", "TINY"]

LIKELIHOODS = ("normal", "bernoulli", "continuous_bernoulli")
MISSINGNESS_MODES = ("straight_through", "soft", "official")
PREDICT_INITS = ("own", "official")
# How the same numbers are computed: "fast" (separable sprite placement with the object sum fused,
# broadcast crop grids, scalar-sd likelihood, ...) or "reference" (F.affine_grid + F.grid_sample as
# the official code). Same model, same parameters, same loss up to rounding (tests/core/test_stn.py).
KERNELS = ("fast", "reference")
# DiveConfig fields that change how, not what, is computed: checkpoints ignore them when comparing.
NUMERICS_ONLY = ("kernels",)

# A tiny configuration for fast tests (``build(name, **TINY)``): 8×8 frames, 4×4 sprites, N = 2,
# T = 3, K = 2, narrow nets, s0 = 2 (a sprite then covers 4×4 pixels).
TINY = dict(
    frame_size=8,
    object_size=4,
    num_frames=3,
    num_observed=2,
    ngf=2,
    image_latent=8,
    object_latent=8,
    hidden=8,
    appearance_dim=4,
    static_dim=8,
    dynamic_dim=3,
    appearance_layers=1,
    s0=2.0,
)


@dataclass(frozen=True)
class DiveConfig:
    """Configuration shared by a model, its guide and its ELBO (see ``dive_pyro.build``)."""

    # --- data layout
    frame_size: int = 64  # H = W, paper §4.2 / [oc §1]
    object_size: int = 32  # rectified sprite size = frame/2, [oc §2]
    num_objects: int = 2  # N object slots (2 digits), [oc §1]
    num_frames: int = 20  # T, paper §4.2 (10 input + 10 future)
    num_observed: int = 10  # K input frames, paper §4.2
    # --- network sizes ([oc §2])
    ngf: int = 8  # DCGAN base width, [oc §2]
    image_latent: int = 256  # frame-encoder features, [oc §2]
    object_latent: int = 128  # object-encoder features of a crop, [oc §2]
    hidden: int = 64  # every LSTM hidden size (96 for MOTS), [oc §2]
    appearance_dim: int = 128  # h = dim z_a, paper Eq. 1 / [oc §2]
    static_dim: int = 256  # dim a_s = 2h, [oc §2]
    dynamic_dim: int = 48  # dim a_d (var_app_size), [oc §2]
    appearance_layers: int = 2  # LSTM1/LSTM2 depth, [oc §2]
    batch_norm: bool = True  # BatchNorm in the DCGAN nets, [oc §2]
    init_std: float = 0.02  # N(0, 0.02) weight init, [oc §4]
    prior_scale_init: bool = True  # guide sds start at the prior sds; False: softplus(0) = 0.69, [oc §7]
    # --- priors ([oc §3])
    s0: float = 3.0  # stn_scale_prior: prior mean of the scale, [oc §2, §3]
    scale_range: float = 1.0  # s clamped to [s0 - 1, s0 + 1], [oc §3]
    initial_pose_scale: tuple[float, float, float] = (0.2, 1.0, 1.0)  # sd of z_p_0 prior, [oc §3]
    beta_scale: float = 0.1  # sd of the pose increments beta, [oc §3]
    # --- likelihood (paper §3.3, [oc §3])
    likelihood: str = "normal"  # one of LIKELIHOODS; official Normal
    likelihood_scale: float = 0.3  # sd of the Normal pixel likelihood, [oc §3]
    # --- missingness (paper Eq. 4, [oc §6, §7])
    missingness: str = "straight_through"  # one of MISSINGNESS_MODES; official is "official"/"soft"
    temperature: float = 1.0  # tau of sigmoid(x/tau) in the soft / straight-through modes
    # --- guide tricks ([oc §4, §7])
    imputation_p: float = 0.25  # P(replace a visible object's state by the imputed one), [oc §4]
    appearance_dropout_p: float = 0.3  # P(drop dynamic appearance for the batch), [oc §4]
    dynamic_appearance: bool = True  # with_var_appearance (False in official Scenarios 1-2), [oc §1]
    predict_init: str = "own"  # prediction-LSTM init: "own" state or the "official" shared one, [oc §7]
    stateful_lstm2: bool = True  # carry LSTM2 state (official: stateless, bug), [oc §7]
    # --- ELBO ([oc §3])
    num_particles: int = 1  # Trace_ELBO particles, [oc §3]
    # --- numerics only (same model and loss up to rounding)
    kernels: str = "fast"  # one of KERNELS; "reference" is the affine_grid path of the official code

    def __post_init__(self) -> None:
        positive = ("frame_size", "object_size", "num_objects", "num_frames", "num_observed", "ngf")
        positive += ("image_latent", "object_latent", "hidden", "appearance_dim", "static_dim")
        positive += ("dynamic_dim", "appearance_layers", "num_particles")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DiveConfig.{name} must be a positive integer, got {value!r}")
        if not 0 < self.num_observed < self.num_frames:
            raise ValueError(
                "DiveConfig.num_observed (K) must satisfy 0 < K < num_frames "
                f"(T = {self.num_frames}), got K = {self.num_observed}"
            )
        if self.object_size > self.frame_size:
            raise ValueError(
                f"DiveConfig.object_size ({self.object_size}) must not exceed frame_size ({self.frame_size})"
            )
        for name in ("s0", "scale_range", "beta_scale", "likelihood_scale", "temperature", "init_std"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DiveConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.s0 - self.scale_range <= 0.5:
            raise ValueError(
                "DiveConfig.s0 - scale_range must exceed 0.5 so that the constrained scale stays "
                f"positive and (x, y) = tanh(.)·(s - 0.5) well defined, got {self.s0 - self.scale_range}"
            )
        if len(self.initial_pose_scale) != 3 or min(self.initial_pose_scale) <= 0:
            raise ValueError(f"DiveConfig.initial_pose_scale must be 3 positive sds, got {self.initial_pose_scale!r}")
        for name in ("imputation_p", "appearance_dropout_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"DiveConfig.{name} must lie in [0, 1], got {getattr(self, name)!r}")
        for name, allowed in (
            ("likelihood", LIKELIHOODS),
            ("missingness", MISSINGNESS_MODES),
            ("predict_init", PREDICT_INITS),
            ("kernels", KERNELS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"DiveConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def tiny(cls, **overrides) -> DiveConfig:
        """The :data:`TINY` configuration, with ``overrides``."""
        return cls(**{**TINY, **overrides})
