"""The DIVE generative model (paper §3.3, Eq. 9-10) as a Pyro program.

For each video b, object slot i and frame t::

    x_m[b,i,t]  ~ N(0, 1)                       t < K     missingness latent (Eq. 4)
    z_m         = H(x_m)                                  1 = missing; future frames: present
    z_p_0[b,i]  ~ N([s0, 0, 0], diag[0.2, 1, 1]²)         initial pose (scale, x, y)
    beta[b,i,t] ~ N(0, 0.1²)                    t < T     pose increments
    z_p         = f_tran(z_p_0, beta)                     pose transition (Eq. 5)
    z_a[b,i,t]  ~ N(0, I_h)                     t < T     appearance
    frame[b,t]  = min(1, Σ_i (1 − z_m[b,i,t]) · T(f_dec(z_a[b,i,t]); z_p[b,i,t]))   (Eq. 10)
    obs[b]      ~ Normal(frame[b], 0.3), masked to the visible pixels      (all T frames, Eq. 9)

Each prior comes from a small factory method, so a notebook swaps one by overriding one method
(Pyro's ``contrib/cevae`` pattern); ``f_tran`` and the pixel likelihood are overridable too.
Sites and shapes (``dive`` variant)::

    x_m, z_m, present (B,N,K)   z_p_0 (B,N,1,3)   beta, z_p (B,N,T,3)   z_a (B,N,T,h)
    obs (B,1,1,T,1,H,W)   frames (B,T,1,H,W), recorded outside the plates
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam

from dive_pyro.core.config import DiveConfig
from dive_pyro.core.likelihoods import ScalarScaleNormal
from dive_pyro.core.nets import ConvDecoder, dcgan_init, place_sprites
from dive_pyro.core.stn import place_and_sum
from dive_pyro.core.structure import Plates, check_batch, instance_name, missingness_from_gaussian, pose_transition
from dive_pyro.data.batch import SceneBatch
from dive_pyro.models.appearance import AR1Normal

__all__ = ["DiveModel"]

_PROB_EPS = 1e-4  # probabilities clamped to [eps, 1 - eps] for the Bernoulli-type likelihoods


class DiveModel(PyroModule):
    """DIVE's generative model ``p(y^{1:K}, x^{K+1:T}, z)``; ``forward(batch)`` returns the
    rendered frames ``(B, T, 1, H, W)`` (reconstructions for t < K, predictions after)."""

    #: True where the model sums discrete missingness out (``TraceEnum_ELBO``): posterior draws of
    #: it then come from ``pyro.infer.infer_discrete``, not from the guide.
    enumerates_missingness = False

    def __init__(self, config: DiveConfig | None = None, name: str | None = None) -> None:
        # param-store prefix: "model" for the first instance of the process, then "model_2", ...
        # (see dive_pyro.core.structure.instance_name), distinct from the guide's
        super().__init__(name=name or instance_name("model"))
        self.config = config = config if config is not None else DiveConfig()
        self.decoder = ConvDecoder(config.appearance_dim, config.object_size, config.ngf, 1, config.batch_norm)
        dcgan_init(self.decoder, config.init_std)
        self.decoder.subpixel = config.kernels == "fast"  # thin layers: 3x3 conv + pixel_shuffle
        self.register_buffer("pose_loc", torch.tensor([config.s0, 0.0, 0.0]))
        self.register_buffer("pose_scale", torch.tensor(config.initial_pose_scale, dtype=torch.float32))
        # learnt pixel sds exist only when asked for, so the official parameter set is unchanged
        if config.pixel_scale in ("global", "intensity"):
            self.pixel_scale = PyroParam(torch.tensor(config.likelihood_scale), constraint=constraints.positive)
        if config.pixel_scale == "intensity":
            self.ink_scale = PyroParam(torch.tensor(config.ink_scale), constraint=constraints.positive)

    # ------------------------------------------------------------------ priors (override one)
    def missingness_prior(self, shape: tuple[int, ...]) -> dist.Distribution:
        """Prior of the Gaussian missingness latent ``x_m`` (paper Eq. 4): N(0, 1) as official, or
        N(Φ⁻¹(p), 1) with ``missing_prior = p``, so that P(z_m = 1) = P(x_m ≥ 0) = p."""
        loc = self.pose_loc.new_zeros(())
        if self.config.missing_prior != 0.5:
            loc = torch.special.ndtri(loc.new_tensor(self.config.missing_prior))
        return dist.Normal(loc, 1.0).expand(shape)

    def initial_pose_prior(self, shape: tuple[int, ...]) -> dist.Distribution:
        """Prior of ``z_p_0``: N([s0, 0, 0], diag[0.2, 1, 1]²) (official ``models/DiveModel.py:79-80``)."""
        return dist.Normal(self.pose_loc, self.pose_scale).expand(shape + (3,)).to_event(1)

    def beta_prior(self, shape: tuple[int, ...]) -> dist.Distribution:
        """Prior of the pose increments ``beta``: N(0, 0.1²), i.i.d. over time (official
        ``models/DiveModel.py:82-84``)."""
        loc = self.pose_loc.new_zeros(())
        return dist.Normal(loc, self.config.beta_scale).expand(shape + (3,)).to_event(1)

    def appearance_prior(self, shape: tuple[int, ...]) -> dist.Distribution:
        """Prior of the appearance ``z_a``: N(0, I_h) i.i.d. over time (docs/official_code.md §3); with
        ``appearance_ar = ρ > 0`` a stationary AR(1) chain over time (:class:`AR1Normal`), so that
        changing the appearance between frames (e.g. fading an object out) costs KL."""
        loc = self.pose_loc.new_zeros(())
        if self.config.appearance_ar > 0:
            return AR1Normal(loc.expand(shape + (self.config.appearance_dim,)), self.config.appearance_ar)
        return dist.Normal(loc, 1.0).expand(shape + (self.config.appearance_dim,)).to_event(1)

    def pixel_likelihood(self, loc: torch.Tensor) -> dist.Distribution:
        """Per-pixel likelihood given the rendered frame ``loc`` (config ``likelihood``).

        ``"normal"``: Normal(loc, 0.3) (official). ``"bernoulli"``: the binary cross-entropy used by
        the metrics; grey-level targets are outside its support, so it is an unnormalised
        pseudo-likelihood (validation off for it). ``"continuous_bernoulli"``: a proper density on
        [0, 1].
        """
        kind = self.config.likelihood
        if kind == "normal":
            if self.config.pixel_scale != "fixed":
                return dist.Normal(loc, self.pixel_sd(loc))
            if self.config.kernels == "reference":
                return dist.Normal(loc, self.config.likelihood_scale)
            return ScalarScaleNormal(loc, self.config.likelihood_scale)  # same density, cheaper log_prob
        probs = loc.clamp(_PROB_EPS, 1 - _PROB_EPS)
        if kind == "bernoulli":
            return dist.Bernoulli(probs=probs, validate_args=False)
        if kind == "continuous_bernoulli":
            return dist.ContinuousBernoulli(probs=probs)
        raise ValueError(f"config.likelihood must be 'normal', 'bernoulli' or 'continuous_bernoulli', got {kind!r}")

    def pixel_sd(self, loc: torch.Tensor) -> torch.Tensor | float:
        """The sd of the Normal pixel likelihood (config ``pixel_scale``): the fixed
        ``likelihood_scale`` (official), one learnt scalar (``"global"``), or heteroscedastic
        (``"intensity"``): ``σ_bg + (σ_ink − σ_bg) · loc``, a learnt sd on background pixels and one
        on ink, interpolated by the rendered intensity ``loc`` ∈ [0, 1]."""
        kind = self.config.pixel_scale
        if kind == "fixed":
            return self.config.likelihood_scale
        if kind == "global":
            return self.pixel_scale
        return self.pixel_scale + (self.ink_scale - self.pixel_scale) * loc.clamp(0.0, 1.0)

    def likelihood(self, loc: torch.Tensor, visible: torch.Tensor, event_dim: int = 4) -> dist.Distribution:
        """The observation distribution: pixels masked to ``visible`` *before* ``to_event`` (so
        hidden pixels contribute exactly nothing), then the last ``event_dim`` dims as one event.
        With ``kernels="fast"`` an all-visible mask (every training batch but Sc. 1's) is skipped:
        the same log-density without a full-size ``where`` and its backward."""
        base = self.pixel_likelihood(loc)
        if self.config.kernels != "reference" and bool(visible.all()):
            return base.to_event(event_dim)
        return base.mask(visible).to_event(event_dim)

    # ------------------------------------------------------------------ dynamics and rendering
    def f_tran(self, z_p_0: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Pose transition (paper Eq. 5); the guide uses the same function for its crops."""
        return pose_transition(z_p_0, beta, self.config.s0, self.config.scale_range)

    def render_objects(self, z_a: torch.Tensor, z_p: torch.Tensor) -> torch.Tensor:
        """Each object alone, ``T(f_dec(z_a); z_p)``: ``(B, N, T, h)``, ``(B, N, T, 3)`` →
        ``(B, N, T, 1, H, W)``; one decoder/placement call for all B·N·T sprites."""
        sprites = self.decode(z_a)
        method = "affine_grid" if self.config.kernels == "reference" else "separable"
        return place_sprites(sprites, z_p, self.config.frame_size, method=method)

    def decode(self, z_a: torch.Tensor) -> torch.Tensor:
        """Sprites ``f_dec(z_a)``: ``(..., h)`` → ``(..., 1, o, o)`` (paper Eq. 10)."""
        sprites = self.decoder(z_a.reshape(-1, z_a.shape[-1]))
        return sprites.reshape(*z_a.shape[:-1], *sprites.shape[1:])

    @staticmethod
    def composite(components: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        """Frame = min(1, Σ_i weight_i · component_i) (paper Eq. 10, official clamp).
        ``components`` ``(B, N, t, 1, H, W)``, ``weight`` ``(..., B, N, t)`` or None (all present)
        → ``(..., B, t, 1, H, W)``."""
        if weight is not None:
            components = weight[..., None, None, None] * components
        return components.sum(-5).clamp(max=1.0)

    def appearance_per_frame(self, z_a: torch.Tensor, num_frames: int) -> torch.Tensor:
        """The ``z_a`` site's value as one appearance per object and frame ``(..., N, T, h)``
        (already so here; variants with a static appearance repeat it over time)."""
        if z_a.shape[-2] != num_frames:
            raise ValueError(f"z_a has {z_a.shape[-2]} frames, expected {num_frames}")
        return z_a

    def render_frames(
        self, z_a: torch.Tensor, z_p: torch.Tensor, weight: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Input and future frames ``(..., B, K, 1, H, W)``, ``(B, T − K, 1, H, W)`` (paper Eq. 10):
        ``weight`` ``(..., B, N, K)`` multiplies each object on the K input frames; objects are
        always present in the future (paper §3.3). Equal to :meth:`render_objects` followed by
        :meth:`composite`; with ``kernels="fast"`` the object sum is fused into the placement."""
        K = weight.shape[-1]
        if self.config.kernels == "reference" or weight.dim() > 3:  # enumerated z_m: per-object frames
            components = self.render_objects(z_a, z_p)
            return self.composite(components[:, :, :K], weight), self.composite(components[:, :, K:], None)
        sprites, H = self.decode(z_a), self.config.frame_size
        frames_in = place_and_sum(sprites[:, :, :K], z_p[:, :, :K], weight, H).clamp(max=1.0)
        return frames_in, place_and_sum(sprites[:, :, K:], z_p[:, :, K:], None, H).clamp(max=1.0)

    def render(self, z_a: torch.Tensor, z_p: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Frames ``(B, T, 1, H, W)`` from latents: ``present`` ``(B, N, K)`` weights the K input
        frames; objects are always present in the future (paper §3.3)."""
        return torch.cat(self.render_frames(z_a, z_p, present), -4)

    # ------------------------------------------------------------------ latent blocks
    def sample_missingness_and_weight(self, plates: Plates) -> tuple[torch.Tensor, torch.Tensor]:
        """Inside ``videos``: missingness on the K input frames; returns ``(z_m, weight)``
        ``(B, N, K)``, where ``weight`` multiplies each object's rendering."""
        with plates.objects, plates.input_time:
            x_m = pyro.sample("x_m", self.missingness_prior((plates.B, plates.N, plates.K)))
            z_m, weight = missingness_from_gaussian(x_m, self.config.missingness, self.config.temperature)
            pyro.deterministic("z_m", z_m)
        return z_m, weight

    def sample_pose(self, plates: Plates) -> torch.Tensor:
        """Inside ``videos`` and ``objects``: initial pose, increments, transition → ``(B, N, T, 3)``."""
        B, N, T = plates.B, plates.N, plates.T
        z_p_0 = pyro.sample("z_p_0", self.initial_pose_prior((B, N, 1)))
        with plates.time:
            beta = pyro.sample("beta", self.beta_prior((B, N, T)))
            return pyro.deterministic("z_p", self.f_tran(z_p_0, beta), event_dim=1)

    def sample_appearance(self, plates: Plates) -> torch.Tensor:
        """Inside ``videos`` and ``objects``: one appearance per object and frame → ``(B, N, T, h)``."""
        with plates.time:
            return pyro.sample("z_a", self.appearance_prior((plates.B, plates.N, plates.T)))

    def observe(self, plates: Plates, frames_in: torch.Tensor, frames_future: torch.Tensor, batch: SceneBatch) -> None:
        """Inside ``videos``: one site over all T frames (paper Eq. 9), masked to visible pixels.

        DEVIATION: the official code has two sites (``masked_obs`` for the inputs, ``obs`` for the
        future; same sum) and scores every pixel of the input frames, hidden ones included (it
        crops only the future, and only after ~3k steps, official ``models/DiveModel.py:371-376``); we mask all frames.
        """
        loc = torch.cat([frames_in, frames_future], -4).unsqueeze(-5).unsqueeze(-5)  # (B,1,1,T,1,H,W)
        visible = batch.visible[:, None, None]
        with self.tempered():
            pyro.sample("obs", self.likelihood(loc, visible), obs=batch.observed[:, None, None])

    def tempered(self):
        """Context that raises the likelihood to the power ``likelihood_power`` (a power posterior;
        ``power = n_eff / n`` treats ``n`` correlated pixels as ``n_eff`` independent ones)."""
        return poutine.scale(scale=self.config.likelihood_power)

    # ------------------------------------------------------------------ the program
    def forward(self, batch: SceneBatch) -> torch.Tensor:
        plates = Plates.make(*check_batch(batch, self.config), device=batch.device)
        with plates.videos:
            z_m, weight = self.sample_missingness_and_weight(plates)
            enumerated = z_m.dim() > 3  # model-side enumeration (dive-enum) adds leading dims
            if not enumerated:
                with plates.objects, plates.input_time:
                    pyro.deterministic("present", 1 - z_m)
            with plates.objects:
                z_p = self.sample_pose(plates)
                z_a = self.sample_appearance(plates)
            frames_in, frames_future = self.render_frames(z_a, z_p, weight)
            self.observe(plates, frames_in, frames_future, batch)
        if enumerated:
            return frames_in
        # outside the plates, so a trace holds plain (B, T, 1, H, W) frames (Predictive left-pads
        # such sites to max_plate_nesting; dive_pyro.inference.sample_posterior does not)
        return pyro.deterministic("frames", torch.cat([frames_in, frames_future], -4))
