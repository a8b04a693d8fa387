# mypy: disallow-subclassing-any=False
# (lint runs without torch, where nn.Module is Any; with torch installed this changes nothing)
"""RTCAN-1D (Yin et al.): residual temporal and channel attention network on 3-channel EDA.

Input ``eda`` (batch, 3, n_times), channels **[origin, tonic, phasic]** (raw skin conductance and
its cvxEDA components; the public DEAP loader orders them [tonic, phasic, origin], PMEmo's as here).
``rtcan1d-music`` (:class:`RTCAN1DMusic`) adds ``music`` (batch, n_music), a z-scored stimulus
feature vector (6373 openSMILE features in PMEmo), concatenated before the classifier.
``rtcan1d-bvp`` (:class:`RTCAN1DBVP`, our extension, not in the paper) adds ``bvp`` (batch,
n_bvp_times, 1), a wearable's blood volume pulse, through a second RTCAN-1D trunk
(:class:`RTCAN1DTrunk`, one input channel) whose features are concatenated with the EDA trunk's
at the same point (docs/shipped-models.md#eda--bvp-why-a-second-trunk).

Pipeline (docs/models.md#rtcan-1d; github guanghaoyin/RTCAN-1D ``model/*``):

1. Shallow feature: Conv1d(3 → 64, k7, s2, p3) + BatchNorm (no ReLU, as the code).
2. SCA: channel attention over the whole length (global average → 1×1 conv 64 → 8 → ReLU →
   1×1 conv 8 → 64 → sigmoid → scale).
3. RNTA: the (halved) length L is cut into three clips at ``int(L/3)``, ``int(2L/3)``; one shared
   embedded-Gaussian non-local block (θ, φ, g 1×1 convs 64 → 32, φ and g max-pooled by 2, softmax
   over keys, W = 1×1 conv 32 → 64 + BatchNorm initialised to zero, so the block starts as the
   identity) runs on each clip; the clips are concatenated back.
4. RFE: 4 stages × 2 residual blocks, 64 channels throughout ("depth 1, channels [64, 64, 64,
   64]": one conv k3 + BN + ReLU per block; stride 2 and a 1×1 conv + BN shortcut in each stage's
   first block), then a 1×1 conv stride 3 + BN and an average pool, flattened.
5. Classifier: Linear(→ 256) → ReLU → Linear(256 → 128) → ReLU → Linear(128 → 2).

Choices where the paper and the code differ or are silent (they go into the model card):

- Order SCA → RNTA, as the paper's best ablation (Table 7); the code runs RNTA → SCA. SCA spans the
  whole length, as the code (the paper also describes a per-clip SCA).
- Three clips (paper; the code at commit d354197). The copy at commit 6d5af54 cuts four quarters
  instead; ``n_clips`` changes it.
- SCA inside the residual blocks: off for :class:`RTCAN1D` (the paper removes it for DEAP and
  AMIGOS, where it overfits), on for :class:`RTCAN1DMusic` (the PMEmo code); ``block_attention``.
- Any length: the code fixes L = 2500, where the tail is 79 → 27 → AvgPool(k=14, s=1) → 14 steps,
  so 64 × 14 = 896 features. We keep that pool whenever the tail is longer than 14 steps, with
  kernel ``tail − 13`` (= 14 for L = 2500), and skip it for shorter tails (L = 320 at 16 Hz: tail 4,
  256 features). The clip cut points and the pool kernel are constants of the graph, so ONNX sees a
  fixed L.
- Output: raw logits for [valence high, arousal high] (BCE-with-logits), not the code's trailing
  ReLU / softmax under a cross-entropy loss (which would apply softmax twice).
- Init: residual-stage convs N(0, 2 / (k · C_out)) (He, fan-out) and BatchNorm γ = 1, β = 0 as the
  PMEmo code; PyTorch defaults elsewhere.

Where training departs from the paper (training/presets.py, training/labels.py; not this module):

- Labels: on DEAP ``affectstream train`` defaults to the fixed threshold 5 (high = rating > 5);
  the paper's per-subject k-means is ``--label-rule kmeans`` (the PMEmo default). That rule runs a
  1-D two-cluster k-means per subject **per dimension**; the paper clusters each subject's
  (valence, arousal) pairs in the plane and takes the two coordinates of the midpoint.
- Windows: 20 s trailing windows, not whole trials. The EDA input has no calibration period, so
  with the ``rtcan1d`` preset on DEAP the first two training windows of each trial (ending at 20
  and 22 s, stride 2 s) hold seconds of the 3 s pre-trial baseline, which the paper's DEAP loader
  drops (``[384:]``). In ``rtcan1d-eda-bvp`` the BVP's 3 s calibration period puts the first
  window at 24 s, so none does.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

__all__ = ["RTCAN1D", "RTCAN1DBVP", "RTCAN1DMusic", "RTCAN1DTrunk"]

WIDTH = 64  # channels after the shallow conv and in every residual stage
TAIL_STEPS = 14  # steps the code's AvgPool1d(kernel_size=14, stride=1) leaves at L = 2500


def _conv_len(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


class ChannelAttention1D(nn.Module):
    """SCA: squeeze over time, excite channels. x (batch, C, L) → (batch, C, L)."""

    def __init__(self, channels: int = WIDTH, reduction: int = 8) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool1d(1),
            nn.Conv1d(channels, channels // reduction, 1),
            nn.ReLU(),
            nn.Conv1d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled: torch.Tensor = x * self.gate(x)
        return scaled


class NonLocal1D(nn.Module):
    """Embedded-Gaussian non-local block with max-pooled keys/values. (batch, C, L) → same."""

    def __init__(self, channels: int = WIDTH, inter: int = WIDTH // 2) -> None:
        super().__init__()
        self.theta = nn.Conv1d(channels, inter, 1)
        self.phi = nn.Sequential(nn.Conv1d(channels, inter, 1), nn.MaxPool1d(2))
        self.g = nn.Sequential(nn.Conv1d(channels, inter, 1), nn.MaxPool1d(2))
        out_norm = nn.BatchNorm1d(channels)
        # Zero-initialised BN: the block starts as the identity (Wang et al.; the RTCAN code).
        nn.init.zeros_(out_norm.weight)
        nn.init.zeros_(out_norm.bias)
        self.w = nn.Sequential(nn.Conv1d(inter, channels, 1), out_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = self.theta(x).transpose(1, 2)  # (batch, L, inter)
        key = self.phi(x)  # (batch, inter, L // 2)
        value = self.g(x).transpose(1, 2)  # (batch, L // 2, inter)
        attn = torch.softmax(query @ key, dim=-1)  # (batch, L, L // 2)
        context = (attn @ value).transpose(1, 2)  # (batch, inter, L)
        out: torch.Tensor = x + self.w(context)
        return out


class ClipNonLocal1D(nn.Module):
    """RNTA: one shared :class:`NonLocal1D` on each of ``n_clips`` consecutive clips."""

    def __init__(self, length: int, n_clips: int = 3, channels: int = WIDTH) -> None:
        super().__init__()
        self.cuts = [int(length * i / n_clips) for i in range(n_clips + 1)]
        if min(b - a for a, b in pairwise(self.cuts)) < 2:
            raise ValueError(f"{length} steps are too few for {n_clips} clips of ≥ 2 steps")
        self.block = NonLocal1D(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch.cat of the clips rather than slice assignment into zeros_like: a plain ONNX Concat.
        return torch.cat([self.block(x[:, :, a:b]) for a, b in pairwise(self.cuts)], dim=2)


class ResidualBlock1D(nn.Module):
    """[SCA] → conv k3 → BN → ReLU, plus shortcut, → ReLU (RTCAN ``BasicBlock3x3``)."""

    def __init__(self, channels: int, stride: int = 1, attention: bool = False) -> None:
        super().__init__()
        self.attention = ChannelAttention1D(channels) if attention else nn.Identity()
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv1d(channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm1d(channels),
            )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attended = self.attention(x)
        # As the code: a strided shortcut sees the attended input, the identity one the raw input.
        residual = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(attended)
        out: torch.Tensor = self.relu(self.body(attended) + residual)
        return out


def _trunk(
    n_times: int, in_channels: int, *, n_clips: int, blocks_per_stage: int, block_attention: bool
) -> tuple[nn.Sequential, ChannelAttention1D, ClipNonLocal1D, nn.Sequential, int]:
    """Shallow conv, SCA, RNTA and RFE of one signal of ``in_channels`` channels and ``n_times``
    samples; returns them with the length of the flattened features."""
    length = _conv_len(n_times, 7, 2, 3)
    shallow = nn.Sequential(
        nn.Conv1d(in_channels, WIDTH, 7, stride=2, padding=3), nn.BatchNorm1d(WIDTH)
    )
    channel_attention = ChannelAttention1D(WIDTH)
    temporal_attention = ClipNonLocal1D(length, n_clips, WIDTH)
    blocks: list[nn.Module] = []
    for _ in range(4):
        for i in range(blocks_per_stage):
            blocks.append(ResidualBlock1D(WIDTH, 2 if i == 0 else 1, block_attention))
        length = _conv_len(length, 3, 2, 1)
    tail = _conv_len(length, 1, 3, 0)
    pool = max(1, tail - TAIL_STEPS + 1)
    features = nn.Sequential(
        *blocks,
        nn.Conv1d(WIDTH, WIDTH, 1, stride=3, bias=False),
        nn.BatchNorm1d(WIDTH),
        nn.AvgPool1d(pool, stride=1) if pool > 1 else nn.Identity(),
        nn.Flatten(),
    )
    return shallow, channel_attention, temporal_attention, features, WIDTH * (tail - pool + 1)


def _init_features(features: nn.Module) -> None:
    """He (fan-out) init of the residual stages' convs, as the PMEmo code (called last, so the
    random draws keep their order)."""
    for module in features.modules():
        if isinstance(module, nn.Conv1d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


def _classifier(n_in: int, n_outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, 256),
        nn.ReLU(),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Linear(128, n_outputs),
    )


class _RTCAN1DBase(nn.Module):
    """Shared body: shallow conv → SCA → RNTA → RFE → classifier over ``feature_dim + n_music``."""

    def __init__(
        self,
        n_times: int,
        n_music: int,
        n_outputs: int,
        *,
        n_clips: int,
        blocks_per_stage: int,
        block_attention: bool,
    ) -> None:
        super().__init__()
        self.n_times, self.n_music, self.n_outputs = n_times, n_music, n_outputs
        (
            self.shallow,
            self.channel_attention,
            self.temporal_attention,
            self.features,
            self.feature_dim,
        ) = _trunk(
            n_times,
            3,
            n_clips=n_clips,
            blocks_per_stage=blocks_per_stage,
            block_attention=block_attention,
        )
        self.classifier = _classifier(self.feature_dim + n_music, n_outputs)
        _init_features(self.features)

    def eda_features(self, eda: torch.Tensor) -> torch.Tensor:
        """(batch, 3, n_times) → (batch, feature_dim)."""
        x = self.temporal_attention(self.channel_attention(self.shallow(eda)))
        features: torch.Tensor = self.features(x)
        return features


class RTCAN1DTrunk(nn.Module):
    """One RTCAN-1D feature extractor (shallow conv → SCA → RNTA → RFE, no classifier) on a signal
    of ``in_channels`` channels. x (batch, in_channels, n_times) → (batch, feature_dim)."""

    def __init__(
        self,
        n_times: int,
        in_channels: int,
        *,
        n_clips: int = 3,
        blocks_per_stage: int = 2,
        block_attention: bool = False,
    ) -> None:
        super().__init__()
        (
            self.shallow,
            self.channel_attention,
            self.temporal_attention,
            self.features,
            self.feature_dim,
        ) = _trunk(
            n_times,
            in_channels,
            n_clips=n_clips,
            blocks_per_stage=blocks_per_stage,
            block_attention=block_attention,
        )
        _init_features(self.features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.temporal_attention(self.channel_attention(self.shallow(x)))
        features: torch.Tensor = self.features(y)
        return features


class RTCAN1D(_RTCAN1DBase):
    """RTCAN-1D on EDA alone.

    Parameters
    ----------
    n_times : samples per window, L (320 = 20 s at 16 Hz; the code used 2500)
    n_outputs : logits per sample (2: valence, arousal)
    n_clips : clips of the temporal (non-local) attention
    blocks_per_stage : residual blocks in each of the 4 stages (code: 2)
    block_attention : SCA inside every residual block (PMEmo code) or not (DEAP/AMIGOS)

    Shapes
    ------
    eda : (batch, 3, n_times) → logits (batch, n_outputs)
    """

    def __init__(
        self,
        n_times: int = 320,
        n_outputs: int = 2,
        *,
        n_clips: int = 3,
        blocks_per_stage: int = 2,
        block_attention: bool = False,
    ) -> None:
        super().__init__(
            n_times,
            0,
            n_outputs,
            n_clips=n_clips,
            blocks_per_stage=blocks_per_stage,
            block_attention=block_attention,
        )

    def forward(self, eda: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.eda_features(eda))
        return logits


class RTCAN1DMusic(_RTCAN1DBase):
    """RTCAN-1D on EDA fused with a stimulus (music) feature vector.

    Parameters
    ----------
    n_music : length of the stimulus feature vector (6373 openSMILE features in PMEmo)
    block_attention : default on, as the PMEmo code
    others : as :class:`RTCAN1D`

    Shapes
    ------
    eda : (batch, 3, n_times); music : (batch, n_music) → logits (batch, n_outputs)
    """

    def __init__(
        self,
        n_times: int = 320,
        n_music: int = 6373,
        n_outputs: int = 2,
        *,
        n_clips: int = 3,
        blocks_per_stage: int = 2,
        block_attention: bool = True,
    ) -> None:
        super().__init__(
            n_times,
            n_music,
            n_outputs,
            n_clips=n_clips,
            blocks_per_stage=blocks_per_stage,
            block_attention=block_attention,
        )

    def forward(self, eda: torch.Tensor, music: torch.Tensor) -> torch.Tensor:
        # Plain concatenation before the first linear layer (paper eq. 5; the code).
        logits: torch.Tensor = self.classifier(torch.cat([self.eda_features(eda), music], dim=1))
        return logits


class RTCAN1DBVP(nn.Module):
    """RTCAN-1D on a wearable's EDA and blood volume pulse: two trunks, fused before the classifier.

    Not in Yin et al.: their framework fuses a second modality (the music vector) by concatenation
    before the classifier (paper eq. 5); here the second modality is a signal, so it gets its own
    RTCAN-1D trunk (:class:`RTCAN1DTrunk`, one input channel) and its features are concatenated with
    the EDA trunk's. Stacking BVP as a fourth channel of the EDA trunk would force one rate on both
    (the pulse wants more than EDA's 16 Hz) and mix a 1 Hz oscillation with the cvxEDA components
    in the first convolution; the separate trunk avoids both.

    Parameters
    ----------
    n_times : EDA samples per window (320 = 20 s at 16 Hz)
    n_bvp_times : BVP samples per window (640 = 20 s at 32 Hz)
    others : as :class:`RTCAN1D` (the same for both trunks)

    Shapes
    ------
    eda : (batch, 3, n_times); bvp : (batch, n_bvp_times, 1), time-major like every raw input
    → logits (batch, n_outputs)
    """

    def __init__(
        self,
        n_times: int = 320,
        n_bvp_times: int = 640,
        n_outputs: int = 2,
        *,
        n_clips: int = 3,
        blocks_per_stage: int = 2,
        block_attention: bool = False,
    ) -> None:
        super().__init__()
        self.n_times, self.n_bvp_times, self.n_outputs = n_times, n_bvp_times, n_outputs
        self.eda = RTCAN1DTrunk(
            n_times,
            3,
            n_clips=n_clips,
            blocks_per_stage=blocks_per_stage,
            block_attention=block_attention,
        )
        self.bvp = RTCAN1DTrunk(
            n_bvp_times,
            1,
            n_clips=n_clips,
            blocks_per_stage=blocks_per_stage,
            block_attention=block_attention,
        )
        self.classifier = _classifier(self.eda.feature_dim + self.bvp.feature_dim, n_outputs)

    def forward(self, eda: torch.Tensor, bvp: torch.Tensor) -> torch.Tensor:
        fused = torch.cat([self.eda(eda), self.bvp(bvp.transpose(1, 2))], dim=1)
        logits: torch.Tensor = self.classifier(fused)
        return logits
