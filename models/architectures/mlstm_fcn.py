# mypy: disallow-subclassing-any=False
# (lint runs without torch, where nn.Module is Any; with torch installed this changes nothing)
"""MLSTM-FCN (Karim et al.), sized as the athar70 DEAP adaptation.

Input ``x`` (batch, n_times, n_chans): **time-major** like every other raw input of the zoo
(sample t of channel v at ``x[:, t, v]``). Karim's code takes the variables-first layout
(batch, V, T); we transpose once inside, and that one (batch, n_chans, n_times) tensor feeds both
branches:

- **LSTM branch with dimension shuffle**: an LSTM(8) runs over the *variable* axis (n_chans steps,
  each step the whole n_times-long series of one variable), last hidden state, dropout 0.8.
- **FCN branch**: Conv1d 128 k8 → BN → ReLU → SE → Conv1d 256 k5 → BN → ReLU → SE → Conv1d 128 k3 →
  BN → ReLU → global average over time. SE = average over time → Linear(C → C/16, no bias) → ReLU
  → Linear(C/16 → C, no bias) → sigmoid → channel scale.
- Head: concat (8 + 128) → Linear → logits.

Choices (docs/models.md#mlstm-fcn; they go into the model card):

- Two logits [valence high, arousal high] for BCE-with-logits, not athar70's 9-class softmax.
- Keras "same" padding written out (k8: 3 left / 4 right, k5: 2/2, k3: 1/1) so ONNX holds a
  plain ``Pad``; Keras BatchNorm constants (momentum 0.99 → PyTorch 0.01, eps 1e-3); He-uniform
  conv and He-normal SE initialisation as the Keras code.
- Keras ``Masking`` dropped: our windows have no padding, and it does not export.
- Constructor defaults n_chans = 5 and n_times = 640 are the sizes of athar70's arousal model
  (GSR, respiration, plethysmograph, temperature and an HRV channel; 5 s at 128 Hz). No preset
  feeds that: HRV is computed nowhere in affectstream. The presets (training/presets.py) train
  ``mlstm-fcn`` on DEAP's 8 peripheral channels (hEOG, vEOG, zEMG, tEMG, GSR, respiration,
  plethysmograph, temperature) and ``mlstm-fcn-periph`` on 3 (GSR, PPG, RESP), both 10 s at
  32 Hz (n_times = 320), standardised by the 3 s calibration period.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLSTMFCN", "SqueezeExcite1D"]

# Keras BatchNormalization defaults in PyTorch terms (Keras momentum 0.99 = PyTorch 0.01).
BN_MOMENTUM, BN_EPS = 0.01, 1e-3


class SqueezeExcite1D(nn.Module):
    """Channel gate from the time average. x (batch, C, T) → (batch, C, T)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )
        for layer in self.gate:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scaled: torch.Tensor = x * self.gate(x.mean(dim=2)).unsqueeze(2)
        return scaled


def _conv_block(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """Keras Conv1D(padding='same') → BatchNorm → ReLU."""
    conv = nn.Conv1d(c_in, c_out, kernel)
    nn.init.kaiming_uniform_(conv.weight, nonlinearity="relu")
    left = (kernel - 1) // 2  # TF puts the odd sample of padding on the right
    return nn.Sequential(
        nn.ConstantPad1d((left, kernel - 1 - left), 0.0),
        conv,
        nn.BatchNorm1d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM),
        nn.ReLU(),
    )


class MLSTMFCN(nn.Module):
    """Multivariate LSTM-FCN.

    Parameters
    ----------
    n_times : samples per window (LSTM input size after the dimension shuffle)
    n_chans : variables (the LSTM's sequence length after the shuffle)
    n_outputs : logits per sample (2: valence, arousal)
    lstm_units : LSTM hidden size (Karim and athar70: 8)
    dropout : after the LSTM (Karim: 0.8)

    Shapes
    ------
    x : (batch, n_times, n_chans), time-major → logits (batch, n_outputs)
    """

    def __init__(
        self,
        n_times: int = 640,
        n_chans: int = 5,
        n_outputs: int = 2,
        *,
        lstm_units: int = 8,
        dropout: float = 0.8,
    ) -> None:
        super().__init__()
        self.n_times, self.n_chans, self.n_outputs = n_times, n_chans, n_outputs
        self.lstm = nn.LSTM(n_times, lstm_units, batch_first=True)
        self.lstm_dropout = nn.Dropout(dropout)
        self.fcn = nn.Sequential(
            _conv_block(n_chans, 128, 8),
            SqueezeExcite1D(128),
            _conv_block(128, 256, 5),
            SqueezeExcite1D(256),
            _conv_block(256, 128, 3),
        )
        self.head = nn.Linear(lstm_units + 128, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        by_variable = x.transpose(1, 2)  # (batch, n_chans, n_times)
        seq, _ = self.lstm(by_variable)  # dimension shuffle: n_chans steps of n_times values
        lstm_features = self.lstm_dropout(seq[:, -1])  # (batch, lstm_units)
        conv_features = self.fcn(by_variable).mean(dim=2)  # (batch, 128)
        logits: torch.Tensor = self.head(torch.cat([lstm_features, conv_features], dim=1))
        return logits
