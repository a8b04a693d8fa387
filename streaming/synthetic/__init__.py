"""Synthetic stand-ins for the datasets, generated from small documented models.

- :mod:`.deap`: subjects in DEAP's ``data_preprocessed_python`` format (EEG, EOG, EMG, skin
  conductance, respiration, pulse, temperature at 128 Hz) whose signals follow the felt valence and
  arousal of 40 shared videos;
- :mod:`.pmemo`: a dataset in the PMEmo (2019) layout (songs, ratings, music features, skin
  conductance at 50 Hz);
- :mod:`.physiology`: what both share — the skin conductance model (tonic level, SCR onsets and
  Bateman kernels, sensor noise), label effects and individual differences, seeded random streams
  and the ``SYNTHETIC.json`` marker written beside every generated folder.

Nothing measured on this data is a DEAP or PMEmo result.
"""
