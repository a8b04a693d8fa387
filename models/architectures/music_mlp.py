# mypy: disallow-subclassing-any=False
# (lint runs without torch, where nn.Module is Any; with torch installed this changes nothing)
"""Music-only baseline: RTCAN-1D's classifier head on the stimulus feature vector alone.

Input ``music`` (batch, n_music), the z-scored stimulus features (6373 openSMILE functionals per
song in PMEmo); no physiological signal at all. RTCAN-1D's classifier (docs/models.md#rtcan-1d,
``Regression_add``): Linear(n_music → 256) → ReLU → Linear(256 → 128) → ReLU →
Linear(128 → 2), raw logits for [valence high, arousal high] (BCE-with-logits).

It answers one question: how much of a fusion model's score could come from the music alone? Under
a subject-independent split every test song was also a training song, so this model can score by
recognising songs (stimulus leakage); only a song-independent split measures what music features
say about a new song. The paper quotes a music-only SVM from earlier work (about 70 %); this is
not that model.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MusicMLP"]


class MusicMLP(nn.Module):
    """Stimulus features → 256 → 128 → logits.

    Parameters
    ----------
    n_music : length of the stimulus feature vector
    n_outputs : logits per sample (2: valence, arousal)

    Shapes
    ------
    music : (batch, n_music) → logits (batch, n_outputs)
    """

    def __init__(self, n_music: int = 6373, n_outputs: int = 2) -> None:
        super().__init__()
        self.n_music, self.n_outputs = n_music, n_outputs
        self.classifier = nn.Sequential(
            nn.Linear(n_music, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, n_outputs),
        )

    def forward(self, music: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(music)
        return logits
