"""BDDAE (Tang et al.): a bimodal deep denoising autoencoder with a classifier on its shared code.

Inputs (the same features as Bimodal-LSTM, docs/models.md#bddae):

- ``eeg_de`` (batch, n_steps, n_eeg_features): differential entropy of 32 EEG channels × 4 bands
  (θ, α, β, γ) on 2-s Hanning windows, band-major → 128 features per step;
- ``periph_stats`` (batch, n_steps, n_periph_features): max, min, mean, std, variance and sum of
  squares of the 8 peripheral channels on the same windows → 48 features per step.

Tang et al. feed one window's features per sample, so the preset gives one 2-s step
(``n_steps = 1``); with more steps the steps of an input are flattened into one vector.

Network (every hidden layer affine + sigmoid, as in the paper):

- corruption layer on each input, **in training mode only**: "dropout" noise (the paper's word:
  each feature zeroed with probability ``corruption``, the others scaled by 1/(1 − corruption),
  as ``torch.nn.functional.dropout`` does) or, with ``noise="gaussian"``, additive N(0,
  ``corruption``²) noise. In eval mode (validation, test, export) the inputs pass unchanged, so
  the exported graph holds no noise;
- EEG encoder → ``hidden_eeg``; peripheral encoder → ``hidden_periph``; their concatenation →
  shared encoder → ``hidden_shared`` (the fused representation);
- mirror decoders: shared → (``hidden_eeg`` + ``hidden_periph``) → each modality's features.
  The last decoder layers are linear (see departures);
- classifier: one linear layer on the shared representation, two logits [valence high, arousal
  high].

``forward`` returns the classifier's logits only: the exported ONNX graph is corruption (the
identity in eval mode) + the three encoders + the classifier, with no decoder. The decoders serve
:meth:`BDDAE.auxiliary_loss`, which the training loop (training/train.py) adds to the
classification loss of every batch: ``recon_weight`` × the denoising reconstruction error (the
mean of the two modalities' mean squared errors between the decoders' output, computed from a
freshly corrupted copy of the inputs, and the clean inputs).

Classifier and training, and why:

- The head is **logistic** (binary cross-entropy on each logit, the registry's ``bce_logits``),
  not Tang et al.'s linear SVM. Its sigmoid, which the export appends, is then an estimate of the
  probability of "high" under the log-loss (a quantity a calibration step can refine), while an
  SVM score is a margin with no probabilistic reading. Both heads are linear in the shared code.
- It is trained **jointly** with the autoencoder, not after a separate pre-training stage:
  every batch minimises ``BCE + recon_weight · reconstruction error`` from random initialisation,
  and early stopping watches the validation classification loss. The project's training loop
  (the same for every architecture) runs one stage with one optimiser (by default Adam, lr 1e-3,
  weight decay 1e-4); the reconstruction term keeps the shared code an autoencoder's code while the
  classifier shapes it.

Departures from the paper (Tang et al. 2017, §2 and §4):

- Paper: unsupervised pre-training of the denoising autoencoder (reconstruction only), then
  supervised fine-tuning of the three encoders with a linear-SVM (hinge) layer on top, the
  encoders at 1 % of the last layer's learning rate. Here: one joint stage (above) with a
  logistic layer and one learning rate for all layers.
- Paper: features min-max scaled to [0, 1] and sigmoid reconstructions. Here: features
  standardised per feature on the training windows (the contract's mean and SD, as every model
  of the zoo; the service applies them), so the reconstructions are linear and the error is the
  squared error of standardised features. A masked feature is set to 0, the training mean.
- Hidden sizes (64 EEG, 32 peripheral, 32 shared), the corruption level (0.2) and the
  reconstruction weight (1.0) are our choices: the paper's values are not used here. One model
  with two outputs, rather than one model per task.
- Weights: PyTorch's default initialisation; the decoders are not tied to the encoders.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional

__all__ = ["BDDAE"]

Noise = Literal["dropout", "gaussian"]


class BDDAE(nn.Module):
    """Corruption → per-modality sigmoid encoders → shared sigmoid layer → linear classifier;
    mirror decoders reconstruct both (clean) inputs for :meth:`auxiliary_loss`.

    Parameters
    ----------
    n_steps : steps per sample (flattened with the features of each input)
    n_eeg_features, n_periph_features : features per step of each input
    n_outputs : logits per sample (2: valence, arousal)
    hidden_eeg, hidden_periph : the modality encoders' sizes
    hidden_shared : the size of the shared (fused) representation
    noise : ``"dropout"`` (masking, the paper's) or ``"gaussian"`` (additive)
    corruption : masking probability, or the Gaussian noise's SD; 0 turns corruption off
    recon_weight : weight of the reconstruction error in :meth:`auxiliary_loss`

    Shapes
    ------
    eeg_de : (batch, n_steps, n_eeg_features); periph_stats : (batch, n_steps, n_periph_features)
    → logits (batch, n_outputs)
    """

    def __init__(
        self,
        n_steps: int = 1,
        n_eeg_features: int = 128,
        n_periph_features: int = 48,
        n_outputs: int = 2,
        *,
        hidden_eeg: int = 64,
        hidden_periph: int = 32,
        hidden_shared: int = 32,
        noise: Noise = "dropout",
        corruption: float = 0.2,
        recon_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if noise not in ("dropout", "gaussian"):
            raise ValueError(f"noise must be 'dropout' or 'gaussian', not {noise!r}")
        if corruption < 0 or (noise == "dropout" and corruption >= 1):
            raise ValueError(f"corruption {corruption} is out of range for {noise} noise")
        if recon_weight < 0:
            raise ValueError(f"recon_weight must be ≥ 0, not {recon_weight}")
        self.n_steps, self.n_outputs = n_steps, n_outputs
        self.noise, self.corruption, self.recon_weight = noise, corruption, recon_weight
        n_eeg, n_periph = n_steps * n_eeg_features, n_steps * n_periph_features
        self.eeg_encoder = nn.Sequential(nn.Linear(n_eeg, hidden_eeg), nn.Sigmoid())
        self.periph_encoder = nn.Sequential(nn.Linear(n_periph, hidden_periph), nn.Sigmoid())
        self.shared_encoder = nn.Sequential(
            nn.Linear(hidden_eeg + hidden_periph, hidden_shared), nn.Sigmoid()
        )
        self.shared_decoder = nn.Sequential(
            nn.Linear(hidden_shared, hidden_eeg + hidden_periph), nn.Sigmoid()
        )
        self.eeg_decoder = nn.Linear(hidden_eeg, n_eeg)
        self.periph_decoder = nn.Linear(hidden_periph, n_periph)
        self.classifier = nn.Linear(hidden_shared, n_outputs)
        self._split = hidden_eeg

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The corruption layer: ``x`` unchanged in eval mode (or with ``corruption`` 0), a noisy
        copy in training mode."""
        if not self.training or self.corruption == 0:
            return x
        if self.noise == "gaussian":
            return x + self.corruption * torch.randn_like(x)
        return functional.dropout(x, p=self.corruption, training=True)

    def encode(self, eeg_de: torch.Tensor, periph_stats: torch.Tensor) -> torch.Tensor:
        """The shared representation (batch, hidden_shared) of the (corrupted, in training)
        inputs."""
        eeg = self.eeg_encoder(self.corrupt(eeg_de.flatten(1)))
        periph = self.periph_encoder(self.corrupt(periph_stats.flatten(1)))
        shared: torch.Tensor = self.shared_encoder(torch.cat([eeg, periph], dim=1))
        return shared

    def forward(self, eeg_de: torch.Tensor, periph_stats: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.encode(eeg_de, periph_stats))
        return logits

    def reconstruct(
        self, eeg_de: torch.Tensor, periph_stats: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both inputs decoded from the shared representation, in the inputs' shapes."""
        hidden = self.shared_decoder(self.encode(eeg_de, periph_stats))
        eeg = self.eeg_decoder(hidden[:, : self._split]).reshape(eeg_de.shape)
        periph = self.periph_decoder(hidden[:, self._split :]).reshape(periph_stats.shape)
        return eeg, periph

    def reconstruction_loss(self, eeg_de: torch.Tensor, periph_stats: torch.Tensor) -> torch.Tensor:
        """Mean of the two modalities' mean squared errors between :meth:`reconstruct` (from
        corrupted inputs in training mode) and the clean inputs."""
        eeg, periph = self.reconstruct(eeg_de, periph_stats)
        return (functional.mse_loss(eeg, eeg_de) + functional.mse_loss(periph, periph_stats)) / 2

    def auxiliary_loss(self, eeg_de: torch.Tensor, periph_stats: torch.Tensor) -> torch.Tensor:
        """The term the training loop adds to the classification loss: ``recon_weight`` ×
        :meth:`reconstruction_loss`."""
        return self.recon_weight * self.reconstruction_loss(eeg_de, periph_stats)
