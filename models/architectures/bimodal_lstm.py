# mypy: disallow-subclassing-any=False
# (lint runs without torch, where nn.Module is Any; with torch installed this changes nothing)
"""Bimodal-LSTM (Tang et al.): an LSTM per modality, dropout, concatenation, one linear layer.

Inputs (docs/models.md#bimodal-lstm):

- ``eeg_de`` (batch, n_steps, n_eeg_features): differential entropy of 32 EEG channels × 4 bands
  (θ, α, β, γ) on 2-s Hanning windows, band-major → 128 features per step;
- ``periph_stats`` (batch, n_steps, n_periph_features): max, min, mean, std, variance and sum of
  squares of the 8 peripheral channels on the same windows → 48 features per step.

Both standardised per feature upstream (Tang z-scores for this model); sequences of 5 steps.

The last layer is Tang's linear SVM: its two outputs are *scores* for [valence high, arousal high],
trained with the squared hinge loss ``mean(max(0, 1 − y·f)²)``, y ∈ {−1, +1} (liblinear ``-s 2``,
which Tang used to refit the layer; the registry records ``loss="squared_hinge"``). The loss holds
no λ‖W‖² term: the only L2 regularisation is Adam's ``weight_decay=1e-4`` (training/train.py, the
same for every model, on all parameters rather than the last layer's weights alone), not
liblinear's C = 1/(2λ). The exported ``sigmoid(score)`` is therefore not a calibrated
probability, but it is above 0.5 exactly when the SVM says "high".

Choices (they go into the model card):

- Prediction from the **last step** of each encoder (Tang predict at every step); one model with
  two outputs rather than one model per task.
- Mid-range sizes from Tang's DEAP search: EEG hidden 128 (range 32–256), other hidden 64
  (16–256), dropout 0.5 (0.2–0.9).
- Initialisation: PyTorch's LSTM default; ``init_std=0.001`` gives Tang's N(0, 0.001²) weights
  with zero biases.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BimodalLSTM"]


class BimodalLSTM(nn.Module):
    """Two LSTM encoders (EEG DE, peripheral statistics) → dropout → concat → linear.

    Parameters
    ----------
    n_steps : steps per sequence (the LSTMs accept any length; kept for the contract)
    n_eeg_features, n_periph_features : features per step of each input
    n_outputs : scores per sample (2: valence, arousal)
    hidden_eeg, hidden_periph : LSTM hidden sizes (h_e, h_o)
    dropout : on each encoder's output
    init_std : if given, N(0, init_std²) weights and zero biases everywhere (Tang: 0.001)

    Shapes
    ------
    eeg_de : (batch, n_steps, n_eeg_features); periph_stats : (batch, n_steps, n_periph_features)
    → scores (batch, n_outputs)
    """

    def __init__(
        self,
        n_steps: int = 5,
        n_eeg_features: int = 128,
        n_periph_features: int = 48,
        n_outputs: int = 2,
        *,
        hidden_eeg: int = 128,
        hidden_periph: int = 64,
        dropout: float = 0.5,
        init_std: float | None = None,
    ) -> None:
        super().__init__()
        self.n_steps, self.n_outputs = n_steps, n_outputs
        self.eeg = nn.LSTM(n_eeg_features, hidden_eeg, batch_first=True)
        self.periph = nn.LSTM(n_periph_features, hidden_periph, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.svm = nn.Linear(hidden_eeg + hidden_periph, n_outputs)
        if init_std is not None:
            for name, param in self.named_parameters():
                if name.endswith("bias") or "bias_" in name:
                    nn.init.zeros_(param)
                else:
                    nn.init.normal_(param, std=init_std)

    def forward(self, eeg_de: torch.Tensor, periph_stats: torch.Tensor) -> torch.Tensor:
        eeg_seq, _ = self.eeg(eeg_de)  # (batch, n_steps, hidden_eeg)
        periph_seq, _ = self.periph(periph_stats)  # (batch, n_steps, hidden_periph)
        encoded = torch.cat([eeg_seq[:, -1], periph_seq[:, -1]], dim=1)
        scores: torch.Tensor = self.svm(self.dropout(encoded))
        return scores
