# mypy: disallow-subclassing-any=False
# (lint runs without torch, where nn.Module is Any; with torch installed this changes nothing)
"""CNN-LSTM (Liao et al.) with the concrete sizes of Yang et al.'s 2018 parallel CRNN.

Liao et al. publish a summary only: 1-s DEAP segments, EEG as 9×9 electrode maps through a 2-D CNN
of three conv layers with batch norm and no pooling, the peripheral signals through two stacked
LSTM layers, both feature vectors concatenated, one classifier for valence and arousal. The sizes
are Yang et al.'s (docs/models.md#cnn-lstm, github ynulonger/ijcnn ``cv.py``).

Choices where the sources are silent or where we depart (they go into the model card):

- **EEG representation (serving budget).** Yang runs the CNN on every one of the 128 maps of a
  window (shared weights), stacks the 128 × 128 output maps along depth and reduces them with a 1×1
  conv to 13 maps: ~1.7 GMAC per window and 213 k parameters in that 1×1 conv alone. Our default
  (``frame_wise=False``) feeds the ``n_times`` maps as the input channels of one 2-D CNN
  (32 → 64 → 128 maps, then the same kind of 1×1 conv to 13 maps and flatten to 9·9·13 = 1053):
  ~19 MMAC for the CNN. Measured with ONNX Runtime on 2 (busy) cores at batch 1, the whole model
  takes 1.1–1.7 ms per window this way and 22–31 ms frame-wise (docs/models.md#cnn-lstm: MACs of a
  per-frame CNN). The cost is that the first layer mixes the time samples at once instead of
  sharing one spatial filter across them. ``frame_wise=True`` builds Yang's layout for comparison.
- TF "SAME" with an even kernel (4) pads 1 before and 2 after; we write it as an explicit
  ``ZeroPad2d((1, 2, 1, 2))`` + ``Conv2d(k=4)`` so the ONNX graph holds a plain ``Pad``.
- Conv → BatchNorm → ELU as Yang; the conv bias is dropped (BatchNorm's shift makes it redundant).
  Yang's ``tf.layers.batch_normalization`` was never put in training mode, so it ran on its initial
  statistics; we use ordinary batch norm.
- Peripheral branch = Yang's RNN with the ``n_chans`` raw peripheral channels as input (Liao: EOG,
  EMG, GSR, RSP, BVP, TMP = DEAP ch 33–40): per-step Linear → 1024 + ELU, two stacked LSTM(32) with
  dropout 0.5 on each layer's output, the last step, Linear 32 → 1024 + ELU, dropout 0.5.
- Head: one Linear(1053 + 1024 → 2) giving logits for [valence high, arousal high] (two binary
  tasks, BCE-with-logits) instead of Yang's 2-way softmax per task.
- **Training is not Yang's.** ``affectstream train`` trains every model of the zoo the same way
  (training/train.py): Adam, lr 1e-3, ``weight_decay=1e-4`` (an L2 term 0.5 · 1e-4 · Σ‖θ‖² over
  all parameters, biases and batch-norm included), batch 64, early stopping on the validation
  loss. Yang's ``cv.py`` adds 0.5 · Σ ``tf.nn.l2_loss(θ)`` (= 0.25 · Σ‖θ‖², all trainable
  variables) to the cross-entropy, a penalty 5000 times stronger, and trains with Adam at lr 1e-4
  (its later reassignments of ``learning_rate`` never reach the optimiser), batch 200, 70 epochs.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CNNLSTM"]

GRID = 9  # 9×9 electrode map (docs/eeg-features.md#electrode-grid)


def _conv4_same(c_in: int, c_out: int) -> nn.Sequential:
    """Conv 4×4, stride 1, TF 'SAME' (pad 1 before, 2 after) → BatchNorm → ELU."""
    return nn.Sequential(
        nn.ZeroPad2d((1, 2, 1, 2)),
        nn.Conv2d(c_in, c_out, kernel_size=4, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ELU(),
    )


def _conv1x1(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=1, bias=False), nn.BatchNorm2d(c_out), nn.ELU()
    )


class CNNLSTM(nn.Module):
    """Parallel CNN (EEG grids) and LSTM (peripheral signals), concatenated, linear head.

    Parameters
    ----------
    n_times : samples per window, shared by both inputs (128 = 1 s at 128 Hz)
    n_chans : peripheral channels (8 = DEAP ch 33–40)
    n_outputs : logits per sample (2: valence, arousal)
    conv_channels : maps of the three 4×4 conv layers
    reduce_maps : maps of the final 1×1 conv (Yang: 13)
    rnn_fc : width of the per-step input projection and of the post-LSTM layer (Yang: 1024)
    rnn_hidden : LSTM hidden size (Yang: 32)
    dropout : dropout on the LSTM outputs and after the post-LSTM layer
    frame_wise : Yang's per-frame CNN instead of samples-as-channels (see the module docstring)

    Shapes
    ------
    eeg_grid : (batch, n_times, 9, 9)
    periph : (batch, n_times, n_chans)
    returns : logits (batch, n_outputs)
    """

    def __init__(
        self,
        n_times: int = 128,
        n_chans: int = 8,
        n_outputs: int = 2,
        *,
        conv_channels: tuple[int, int, int] = (32, 64, 128),
        reduce_maps: int = 13,
        rnn_fc: int = 1024,
        rnn_hidden: int = 32,
        dropout: float = 0.5,
        frame_wise: bool = False,
    ) -> None:
        super().__init__()
        self.n_times, self.n_chans, self.n_outputs = n_times, n_chans, n_outputs
        self.frame_wise = frame_wise
        c1, c2, c3 = conv_channels
        self.cnn = nn.Sequential(
            _conv4_same(1 if frame_wise else n_times, c1), _conv4_same(c1, c2), _conv4_same(c2, c3)
        )
        self.stacked_maps = c3 * n_times if frame_wise else c3
        self.reduce = _conv1x1(self.stacked_maps, reduce_maps)
        self.rnn_in = nn.Sequential(nn.Linear(n_chans, rnn_fc), nn.ELU())
        self.lstm = nn.LSTM(rnn_fc, rnn_hidden, num_layers=2, batch_first=True, dropout=dropout)
        self.rnn_out = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(rnn_hidden, rnn_fc), nn.ELU(), nn.Dropout(dropout)
        )
        self.head = nn.Linear(reduce_maps * GRID * GRID + rnn_fc, n_outputs)

    def forward(self, eeg_grid: torch.Tensor, periph: torch.Tensor) -> torch.Tensor:
        if self.frame_wise:
            # Every map through the same CNN, then the frames' maps stacked along depth.
            maps = self.cnn(eeg_grid.reshape(-1, 1, GRID, GRID))
            maps = maps.reshape(-1, self.stacked_maps, GRID, GRID)
        else:
            maps = self.cnn(eeg_grid)
        spatial = self.reduce(maps).flatten(1)  # (batch, reduce_maps · 81)
        seq, _ = self.lstm(self.rnn_in(periph))  # (batch, n_times, rnn_hidden)
        temporal = self.rnn_out(seq[:, -1])  # (batch, rnn_fc)
        logits: torch.Tensor = self.head(torch.cat([spatial, temporal], dim=1))
        return logits
