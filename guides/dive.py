"""The amortised DIVE guide ``q(z | y^{1:K})`` (paper §3.1-3.2), official sizes by default.

Pipeline for a batch (only the K input frames are read)::

    e_t        = ConvEncoder(y_t)                                          frame features
    h_y[i,t]   = Linear([fwd_i, bwd_i]),  fwd/bwd LSTMs over t, input [e_t, state of object i-1]
    x_m        ~ N(µ_m, σ_m),  [µ_m, σ_m] = heads(LSTM across objects(h_y))         Eq. 4
    u_t        = ĥ_t if missing else γ h_y + (1-γ) ĥ_t,  ĥ_t = FC(h_p^{t-1})       Eq. 2-3
    h_p^t      = LSTMCell([u_t, present_t], h_p^{t-1});  beta^t ~ N(heads(h_p^t))  Eq. 5
    z_p_0      ~ N(heads(LSTM across objects(h_p^0)))
    beta^{K..} from the prediction LSTM (autoregressive on its own output)
    crops      = T⁻¹(y_t; z_p^t) → ConvEncoder → × present
    LSTM1 over t (input [crop_t, LSTM1 of object i-1]),  a_s = FC(last)             Eq. 6
    LSTM2 for the future steps,  a_d = a_d^0 + cumsum δ                             Eq. 7
    z_a        ~ N(heads([γ_a · a_d, a_s]))                                          Eq. 8

Deviations from the official code are marked ``DEVIATION`` below; docs/official_code.md §7 lists them
with their reasons and the options that restore the official behaviour.
"""

from __future__ import annotations

from collections.abc import Callable

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn

from dive_pyro.core.config import DiveConfig
from dive_pyro.core.nets import MLP, ConvEncoder, NormalHead, crop_objects, dcgan_init
from dive_pyro.core.structure import Plates, check_batch, instance_name, missingness_from_gaussian, pose_transition
from dive_pyro.data.batch import SceneBatch

__all__ = ["DiveGuide", "impute"]


def impute(h: torch.Tensor, h_hat: torch.Tensor, present: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Latent-space imputation (paper Eq. 2): ``u = ĥ`` where the object is missing, else
    ``γ h + (1 − γ) ĥ`` with ``keep = γ ∈ {0, 1}``. ``present``/``keep`` broadcast against the
    feature dim from the left (shape ``h.shape[:-1]``)."""
    gate = (present * keep)[..., None]
    return gate * h + (1 - gate) * h_hat


def _feedback_lstm(
    rnn: nn.LSTM, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], steps: int, stateful: bool
) -> torch.Tensor:
    """``steps`` one-step calls of the batch-first ``rnn``, each fed the previous output (``x``
    ``(M, D)`` first), the state carried on (``stateful``) or zero at every step; outputs
    ``(M, steps, D)``. The same recurrence as calling ``rnn`` step by step, with one ``lstm_cell``
    per layer and step instead of a full ``nn.LSTM`` call (whose fixed cost dominates one step)."""
    layers = rnn.num_layers
    weights = [
        tuple(getattr(rnn, f"{kind}_l{k}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        for k in range(layers)
    ]
    zeros = x.new_zeros(x.shape[0], rnn.hidden_size)
    hs, cs = list(state[0].unbind(0)), list(state[1].unbind(0))
    outputs = []
    for _ in range(steps):
        if not stateful:
            hs, cs = [zeros] * layers, [zeros] * layers
        for k in range(layers):
            hs[k], cs[k] = torch.lstm_cell(x, (hs[k], cs[k]), *weights[k])
            x = hs[k]
        outputs.append(x)
    return torch.stack(outputs, 1)


class DiveGuide(PyroModule):
    """Amortised guide of :class:`~dive_pyro.models.DiveModel`.

    Mutable training attributes (a trainer may schedule them): ``imputation_p`` (probability that
    a visible object's encoder state is replaced by the imputed one, official 0.25) and
    ``appearance_dropout_p`` (probability that the dynamic appearance is dropped for the whole
    batch, official 0.3, halved to 0.15 after 3k steps by the official trainer). Both act only
    in training mode; ``guide.eval()`` switches them off.
    """

    uses_imputation = True  # False in the DDPAE ablation

    def __init__(
        self,
        config: DiveConfig | None = None,
        transition: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        name: str | None = None,
    ) -> None:
        # param-store prefix unique in the process: "guide", then "guide_2", ... (see instance_name)
        super().__init__(name=name or instance_name("guide"))
        self.config = c = config if config is not None else DiveConfig()
        self.imputation_p = c.imputation_p
        self.appearance_dropout_p = c.appearance_dropout_p
        # the model's f_tran (dive_pyro.build passes model.f_tran) so that crops use the same poses
        self.transition = transition
        self._build_encoder()
        self._build_missingness()
        self._build_pose()
        self._build_appearance()
        dcgan_init(self, c.init_std)  # conv/linear N(0, 0.02), biases 0; LSTMs keep torch defaults
        if c.prior_scale_init:
            self._init_scales_at_prior()

    # ------------------------------------------------------------------ networks
    def _build_encoder(self) -> None:
        c = self.config
        self.frame_encoder = ConvEncoder(c.frame_size, c.image_latent, c.ngf, 1, c.batch_norm)
        self.encoder_fwd = nn.LSTM(c.image_latent + c.hidden, c.hidden, batch_first=True)
        self.encoder_bwd = nn.LSTM(c.image_latent + c.hidden, c.hidden, batch_first=True)
        self.encoder_out = nn.Linear(2 * c.hidden, c.hidden)
        self.frame_encoder.subpixel = c.kernels == "fast"  # input gradients: 3x3 conv + pixel_shuffle

    def _build_missingness(self) -> None:
        c = self.config
        self.missing_rnn = nn.LSTM(c.hidden, c.hidden, batch_first=True)  # across objects
        self.missing_head = NormalHead(c.hidden, 1)

    def _build_pose(self) -> None:
        c = self.config
        self.impute_fc = nn.Linear(c.hidden, c.hidden)  # ĥ^t = FC(h_p^{t-1}), Eq. 3
        self.pose_rnn = nn.LSTMCell(c.hidden + 1, c.hidden)  # input [u_t, present_t]
        self.beta_head = NormalHead(c.hidden, 3)
        self.initial_pose_rnn = nn.LSTM(c.hidden, c.hidden, batch_first=True)  # across objects
        # DEVIATION: the initial-pose mean is offset by [s0, 0, 0]; officially it starts at 0 and the
        # scale sits on the clamp boundary s0 - 1 with zero gradient until the KL lifts it (docs/official_code.md §7).
        self.initial_pose_head = NormalHead(c.hidden, 3, loc_offset=torch.tensor([c.s0, 0.0, 0.0]))
        self.predict_rnn = nn.LSTMCell(c.hidden, c.hidden)

    def _build_appearance(self) -> None:
        c = self.config
        self.object_encoder = ConvEncoder(c.object_size, c.object_latent, c.ngf, 1, c.batch_norm)
        # a 1-channel crop has the same memory in both formats, so this changes nothing: converting
        # after the first layer measured 1.00x (tiny-cpu) and 1.01-1.02x for the frame encoder
        self.object_encoder.channels_last = c.kernels == "fast"
        self.object_encoder.subpixel = c.kernels == "fast"  # input gradients: 3x3 conv + pixel_shuffle
        layers = c.appearance_layers
        self.appearance_rnn = nn.LSTM(c.object_latent + c.hidden, c.hidden, layers, batch_first=True)  # LSTM1
        self.appearance_predict_rnn = nn.LSTM(c.hidden, c.hidden, layers, batch_first=True)  # LSTM2
        self.static_fc = nn.Linear(c.hidden, c.static_dim)
        self.dynamic_init = MLP(c.object_latent + c.static_dim, c.hidden, c.dynamic_dim)
        self.dynamic_delta = MLP(c.hidden + c.static_dim, c.hidden, c.dynamic_dim)
        self.appearance_head = NormalHead(c.dynamic_dim + c.static_dim, c.appearance_dim)

    def _init_scales_at_prior(self) -> None:
        """DEVIATION (default, ``prior_scale_init``): each posterior sd starts at its prior sd
        instead of softplus(0) = 0.69 (docs/official_code.md §4). Officially the pose increments start
        ~7× wider than their N(0, 0.1²) prior, so early poses random-walk across the frame and
        training first learns to render blank frames (docs/official_code.md §7)."""
        c = self.config
        sds = {
            "beta_head": [c.beta_scale] * 3,
            "initial_pose_head": list(c.initial_pose_scale),
            "appearance_head": [1.0] * c.appearance_dim,
            "missing_head": [1.0],
        }
        with torch.no_grad():
            for name, sd in sds.items():
                head = getattr(self, name, None)
                if head is not None:  # e.g. the DDPAE guide has no missingness head
                    head.scale.bias.copy_(torch.tensor(sd).expm1().log())  # softplus⁻¹(sd)

    def f_tran(self, z_p_0: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        if self.transition is not None:
            return self.transition(z_p_0, beta)
        return pose_transition(z_p_0, beta, self.config.s0, self.config.scale_range)

    # ------------------------------------------------------------------ §3.1 encoder
    def encode(self, y: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Input frames ``(B, K, 1, H, W)`` → ``h_y`` ``(B, N, K, hidden)`` and each object's
        final forward-encoder state ``(h, c)``, each ``(B, N, hidden)``.

        Objects are encoded one after the other; object i's LSTMs also read object i−1's states at
        the same frame (DDPAE's recursive conditioning). DEVIATION: the backward LSTM starts from
        zeros (officially from the forward state after frame 0, official ``models/pose.py:125-126``).
        """
        B, K = y.shape[:2]
        e = self.frame_encoder(y.reshape(B * K, *y.shape[2:])).reshape(B, K, -1)
        prev_f = prev_b = e.new_zeros(B, K, self.config.hidden)
        h_y, finals_h, finals_c = [], [], []
        for _ in range(self.config.num_objects):
            out_f, (h, c) = self.encoder_fwd(torch.cat([e, prev_f], -1))
            out_b, _ = self.encoder_bwd(torch.cat([e, prev_b], -1).flip(1))
            out_b = out_b.flip(1)  # back in time order: out_b[:, t] has read frames t..K-1
            h_y.append(self.encoder_out(torch.cat([out_f, out_b], -1)))
            finals_h.append(h[0])
            finals_c.append(c[0])
            prev_f, prev_b = out_f, out_b
        return torch.stack(h_y, 1), (torch.stack(finals_h, 1), torch.stack(finals_c, 1))

    # ------------------------------------------------------------------ §3.2 missingness
    def missingness_params(self, h_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(µ_m, σ_m)`` ``(B, N, K)``: an LSTM across the objects of each frame, then heads
        (official; the paper writes FC(h_y)). DEVIATION (default ``missingness``): the paper's
        ``z_m = H(x)`` with a straight-through gradient; officially the presence score is
        thresholded at 0.5 with no gradient, or soft (``missingness="official"`` / ``"soft"``)."""
        B, N, K, D = h_y.shape
        out, _ = self.missing_rnn(h_y.transpose(1, 2).reshape(B * K, N, D))
        loc, scale = self.missing_head(out)
        return loc.reshape(B, K, N).transpose(1, 2), scale.reshape(B, K, N).transpose(1, 2)

    def sample_missingness_and_presence(self, plates: Plates, h_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inside ``videos``: ``x_m ~ N(µ_m, σ_m)``; returns ``(z_m, present)`` ``(B, N, K)``.
        ``present`` gates the imputation and the appearance features (hard in "official" mode,
        where the official guide thresholds its draw)."""
        loc, scale = self.missingness_params(h_y)
        with plates.objects, plates.input_time:
            x_m = pyro.sample("x_m", dist.Normal(loc, scale))
        z_m, _ = missingness_from_gaussian(x_m, self.config.missingness, self.config.temperature)
        return z_m, 1 - z_m

    def missing_probability(self, batch: SceneBatch) -> torch.Tensor:
        """``q(z_m = 1 | y) = P(x_m ≥ 0) = Φ(µ_m / σ_m)``, shape ``(B, N, K)``."""
        check_batch(batch, self.config)
        h_y, _ = self.encode(batch.observed[:, : batch.num_observed])
        loc, scale = self.missingness_params(h_y)
        return torch.special.ndtr(loc / scale)

    # ------------------------------------------------------------------ §3.1-3.2 pose
    def _keep_encoder(self, shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
        """γ of Eq. 2: 1 = use the encoder state. In training γ ~ Bernoulli(1 − imputation_p)
        per object and frame (official: 0.75); at evaluation always 1. Like dropout, this makes the
        guide a random choice among guides; each is valid, so the ELBO stays a lower bound."""
        if self.training and self.imputation_p > 0:
            return torch.bernoulli(like.new_full(shape, 1.0 - self.imputation_p))
        return like.new_ones(shape)

    def pose_states(
        self,
        h_y: torch.Tensor,
        present: torch.Tensor,
        encoder_state: tuple[torch.Tensor, torch.Tensor],
        T: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Imputation + pose LSTM + prediction LSTM. Returns the initial-pose features (an LSTM
        across the objects' first pose states) ``(B, N, hidden)`` and the pose states of every frame
        ``(B, N, T, hidden)`` (pose LSTM for t < K, prediction LSTM after)."""
        B, N, K, D = h_y.shape
        hy = h_y.reshape(B * N, K, D)
        pres = present.reshape(B * N, K)
        keep = self._keep_encoder(pres.shape, hy)
        h = c = hy.new_zeros(B * N, D)
        outputs = []
        for t in range(K):
            if t == 0 or not self.uses_imputation:
                u = hy[:, t]  # the first frame is never imputed (official)
            else:
                u = impute(hy[:, t], self.impute_fc(h), pres[:, t], keep[:, t])
            h, c = self.pose_rnn(torch.cat([u, pres[:, t : t + 1]], -1), (h, c))
            outputs.append(h)
        # initial pose: LSTM across the objects' first pose states
        first, _ = self.initial_pose_rnn(outputs[0].reshape(B, N, D))
        # future increments: prediction LSTM, autoregressive on its own output
        enc_h, enc_c = encoder_state
        # DEVIATION (default predict_init="own"): each object starts from its own final forward-encoder
        # state; the official code gives every object the last object's (a bug, official ``models/pose.py:206``)
        if self.config.predict_init == "official":
            enc_h, enc_c = enc_h[:, -1:].expand(B, N, D), enc_c[:, -1:].expand(B, N, D)
        state = (enc_h.reshape(B * N, D), enc_c.reshape(B * N, D))
        x = outputs[-1]
        for _ in range(T - K):
            state = self.predict_rnn(x, state)
            x = state[0]
            outputs.append(x)
        return first, torch.stack(outputs, 1).reshape(B, N, T, D)

    def pose_posterior(
        self,
        h_y: torch.Tensor,
        present: torch.Tensor,
        encoder_state: tuple[torch.Tensor, torch.Tensor],
        T: int,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """``(loc, scale)`` of ``z_p_0`` ``(B, N, 1, 3)`` and of ``beta`` ``(B, N, T, 3)`` from
        :meth:`pose_states`."""
        first, states = self.pose_states(h_y, present, encoder_state, T)
        loc0, scale0 = self.initial_pose_head(first)
        loc, scale = self.beta_head(states)
        return (loc0.unsqueeze(-2), scale0.unsqueeze(-2)), (loc, scale)

    def sample_pose(
        self,
        plates: Plates,
        h_y: torch.Tensor,
        present: torch.Tensor,
        encoder_state: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """Inside ``videos`` and ``objects``: sample ``z_p_0``, ``beta``; returns ``z_p`` ``(B, N, T, 3)``."""
        (loc0, scale0), (loc, scale) = self.pose_posterior(h_y, present, encoder_state, plates.T)
        z_p_0 = pyro.sample("z_p_0", dist.Normal(loc0, scale0).to_event(1))
        with plates.time:
            beta = pyro.sample("beta", dist.Normal(loc, scale).to_event(1))
        return self.f_tran(z_p_0, beta)

    # ------------------------------------------------------------------ §3.2 appearance
    def _dynamic_gate(self, like: torch.Tensor) -> torch.Tensor:
        """γ of Eq. 8, one coin for the whole batch (official): 0 drops the dynamic appearance."""
        if not self.config.dynamic_appearance:
            return like.new_zeros(())
        if self.training and self.appearance_dropout_p > 0:
            return (torch.rand((), device=like.device) >= self.appearance_dropout_p).to(like.dtype)
        return like.new_ones(())

    def static_appearance(
        self, y: torch.Tensor, z_p: torch.Tensor, present: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Crop features ``f`` ``(B, N, K, F)``, LSTM1 outputs ``(B, N, K, hidden)`` and final
        states ``(layers, B·N, hidden)``, static appearance ``a_s = FC(last output)`` (Eq. 6)."""
        B, K = y.shape[:2]
        N, D = z_p.shape[1], self.config.hidden
        method = "affine_grid" if self.config.kernels == "reference" else "grid"
        frames = y.unsqueeze(1).expand(B, N, *y.shape[1:])
        crops = crop_objects(frames, z_p[:, :, :K], self.config.object_size, method=method)
        f = self.object_encoder(crops.reshape(B * N * K, *crops.shape[-3:])).reshape(B, N, K, -1)
        f = f * present[..., None]  # missing objects' features are zeroed (official)
        prev = f.new_zeros(B, K, D)
        outs, hs, cs = [], [], []
        for i in range(N):  # LSTM1, object i conditioned on object i-1's outputs
            out, (h, c) = self.appearance_rnn(torch.cat([f[:, i], prev], -1))
            outs.append(out)
            hs.append(h)
            cs.append(c)
            prev = out
        h1 = torch.stack(outs, 1)
        state = (torch.stack(hs, 2).reshape(-1, B * N, D), torch.stack(cs, 2).reshape(-1, B * N, D))
        return f, h1, state, self.static_fc(h1[:, :, -1])

    def appearance_features(
        self, y: torch.Tensor, z_p: torch.Tensor, present: torch.Tensor, T: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Crop features ``f``, appearance states ``h_a`` ``(B, N, T, hidden)`` (LSTM1 for t < K,
        LSTM2 after) and the static appearance ``a_s`` ``(B, N, S)`` (Eq. 6)."""
        f, h1, state, a_s = self.static_appearance(y, z_p, present)
        B, N, K, D = h1.shape
        # LSTM2 for the future, input = its previous output. DEVIATION (default, stateful_lstm2):
        # the state is carried on from LSTM1's final state; officially each step starts from zeros.
        x = h1[:, :, -1].reshape(B * N, 1, D)
        if self.config.kernels == "reference":
            future = []
            for _ in range(T - K):
                x, state = self.appearance_predict_rnn(x, state if self.config.stateful_lstm2 else None)
                future.append(x)
            h_future = torch.cat(future, 1)
        else:
            h_future = _feedback_lstm(self.appearance_predict_rnn, x[:, 0], state, T - K, self.config.stateful_lstm2)
        h_future = h_future.reshape(B, N, T - K, D)
        return f, torch.cat([h1, h_future], 2), a_s

    def appearance_posterior(
        self, y: torch.Tensor, z_p: torch.Tensor, present: torch.Tensor, T: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loc, scale)`` of ``z_a`` ``(B, N, T, h)`` from ``[γ a_d, a_s]`` (Eq. 7-8)."""
        f, h_a, a_s = self.appearance_features(y, z_p, present, T)
        a_s_t = a_s.unsqueeze(2).expand(*h_a.shape[:3], a_s.shape[-1])
        a_d0 = self.dynamic_init(torch.cat([f[:, :, 0], a_s], -1))  # official: frame-0 crop features
        a_d = a_d0.unsqueeze(2) + self.dynamic_delta(torch.cat([h_a, a_s_t], -1)).cumsum(2)
        return self.appearance_head(torch.cat([self._dynamic_gate(a_d) * a_d, a_s_t], -1))

    def sample_appearance(
        self, plates: Plates, y: torch.Tensor, z_p: torch.Tensor, present: torch.Tensor
    ) -> torch.Tensor:
        """Inside ``videos`` and ``objects``: sample ``z_a`` ``(B, N, T, h)``."""
        loc, scale = self.appearance_posterior(y, z_p, present, plates.T)
        with plates.time:
            return pyro.sample("z_a", dist.Normal(loc, scale).to_event(1))

    # ------------------------------------------------------------------ the program
    def forward(self, batch: SceneBatch) -> None:
        plates = Plates.make(*check_batch(batch, self.config), device=batch.device)
        y = batch.observed[:, : plates.K]  # the guide never reads the future frames
        h_y, encoder_state = self.encode(y)
        with plates.videos:
            z_m, present = self.sample_missingness_and_presence(plates, h_y)
            with plates.objects:
                z_p = self.sample_pose(plates, h_y, present, encoder_state)
                self.sample_appearance(plates, y, z_p, present)
