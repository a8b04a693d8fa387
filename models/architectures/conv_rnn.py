# mypy: disallow-subclassing-any=False
# (lint runs without torch, where nn.Module is Any; with torch installed this changes nothing)
"""CNN front end + stacked RNN baselines of gupta-ayushi (registry names ``lstm``, ``gru``,
``bilstm``): one module because the three share one template and one source.

Input ``x`` (batch, n_times, n_chans), time-major: by default 2 s at 128 Hz (256 samples) of DEAP
ch 1–37 (32 EEG, hEOG, vEOG, zEMG, tEMG, GSR). Upstream, each channel is standardised by the 3 s
calibration period (DEAP's pre-trial baseline; training/presets.py) and then by its mean and SD
over the training windows (the model contract's normalisation). There is no L2 normalisation: the
notebooks' per-window L2 ``normalize`` followed by a StandardScaler is not reproduced.

Template (docs/models.md#cnn-rnn-baselines): 2 × [Conv1D k3 'valid' → ReLU → MaxPool 2 →
Dropout] → stacked RNNs (Dropout after each; all but the last return sequences) → Dense → ReLU →
Dropout → Dense. With 256 samples the RNNs see 256 → 254 → 127 → 125 → 62 steps.

=========  ========  ================================  =======  =======
name       convs     RNNs                              dense    dropout
=========  ========  ================================  =======  =======
lstm       128, 128  LSTM 256 → 128 → 64 → 32          128      0.3
gru        128, 128  GRU 256 → 32                      128      0.2
bilstm     64, 128   BiLSTM 128 → 64                   64       0.2
=========  ========  ================================  =======  =======

Choices (they go into the model card):

- Two logits [valence high, arousal high] (BCE-with-logits) instead of the notebooks' 4-class
  softmax over HVHA/HVLA/LVHA/LVLA.
- The last RNN's summary is its final hidden state per direction (``h_n``), as Keras's
  ``return_sequences=False``: for the bidirectional layer that is the forward state after the last
  step and the backward state after the *first* step. (``output[:, -1]`` would give a backward
  state that has seen one step only.)
- PyTorch's LSTM has a second bias vector, so each LSTM layer has 4·hidden more parameters than
  the Keras summary; the GRU matches Keras's ``reset_after=True`` GRU count exactly.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = ["ConvBiLSTMBaseline", "ConvGRUBaseline", "ConvLSTMBaseline", "ConvRNNBaseline"]


class ConvRNNBaseline(nn.Module):
    """The shared template; use the three named subclasses.

    Parameters
    ----------
    n_times, n_chans : window length and channel count
    n_outputs : logits per sample (2: valence, arousal)
    conv_channels : output channels of the two Conv1D layers
    cell : ``"lstm"`` or ``"gru"``
    hidden : hidden size of each stacked RNN layer, first to last
    bidirectional : every RNN layer bidirectional (outputs concatenated)
    dense : width of the hidden dense layer
    dropout : after every conv block, RNN layer and the dense layer

    Shapes
    ------
    x : (batch, n_times, n_chans), time-major → logits (batch, n_outputs)
    """

    def __init__(
        self,
        n_times: int,
        n_chans: int,
        n_outputs: int,
        *,
        conv_channels: tuple[int, int],
        cell: Literal["lstm", "gru"],
        hidden: tuple[int, ...],
        bidirectional: bool,
        dense: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.n_times, self.n_chans, self.n_outputs = n_times, n_chans, n_outputs
        steps = ((n_times - 2) // 2 - 2) // 2
        if steps < 1:
            raise ValueError(
                f"n_times={n_times} leaves no step after the CNN front end (need ≥ 10)"
            )
        c1, c2 = conv_channels
        self.front = nn.Sequential(
            nn.Conv1d(n_chans, c1, 3),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Dropout(dropout),
            nn.Conv1d(c1, c2, 3),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Dropout(dropout),
        )
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        directions = 2 if bidirectional else 1
        sizes_in = (c2, *(h * directions for h in hidden[:-1]))
        self.rnns = nn.ModuleList(
            rnn_cls(i, h, batch_first=True, bidirectional=bidirectional)
            for i, h in zip(sizes_in, hidden, strict=True)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(
            nn.Linear(hidden[-1] * directions, dense),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(dense, n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.front(x.transpose(1, 2)).transpose(1, 2)  # (batch, steps, conv_channels[1])
        *stacked, last = self.rnns
        for rnn in stacked:
            seq = self.dropout(rnn(seq)[0])
        state = last(seq)[1]
        h_n = state[0] if isinstance(state, tuple) else state  # (directions, batch, hidden)
        summary = self.dropout(h_n.transpose(0, 1).flatten(1))  # (batch, directions · hidden)
        logits: torch.Tensor = self.head(summary)
        return logits


class ConvLSTMBaseline(ConvRNNBaseline):
    """gupta-ayushi "LSTM": convs 128, 128 → LSTM 256 → 128 → 64 → 32 → dense 128; dropout 0.3."""

    def __init__(
        self,
        n_times: int = 256,
        n_chans: int = 37,
        n_outputs: int = 2,
        *,
        hidden: tuple[int, ...] = (256, 128, 64, 32),
        dropout: float = 0.3,
    ) -> None:
        super().__init__(
            n_times,
            n_chans,
            n_outputs,
            conv_channels=(128, 128),
            cell="lstm",
            hidden=hidden,
            bidirectional=False,
            dense=128,
            dropout=dropout,
        )


class ConvGRUBaseline(ConvRNNBaseline):
    """gupta-ayushi "GRU": convs 128, 128 → GRU 256 → 32 → dense 128; dropout 0.2."""

    def __init__(
        self,
        n_times: int = 256,
        n_chans: int = 37,
        n_outputs: int = 2,
        *,
        hidden: tuple[int, ...] = (256, 32),
        dropout: float = 0.2,
    ) -> None:
        super().__init__(
            n_times,
            n_chans,
            n_outputs,
            conv_channels=(128, 128),
            cell="gru",
            hidden=hidden,
            bidirectional=False,
            dense=128,
            dropout=dropout,
        )


class ConvBiLSTMBaseline(ConvRNNBaseline):
    """gupta-ayushi "BiLSTM": convs 64, 128 → BiLSTM 128 → 64 → dense 64; dropout 0.2."""

    def __init__(
        self,
        n_times: int = 256,
        n_chans: int = 37,
        n_outputs: int = 2,
        *,
        hidden: tuple[int, ...] = (128, 64),
        dropout: float = 0.2,
    ) -> None:
        super().__init__(
            n_times,
            n_chans,
            n_outputs,
            conv_channels=(64, 128),
            cell="lstm",
            hidden=hidden,
            bidirectional=True,
            dense=64,
            dropout=dropout,
        )
