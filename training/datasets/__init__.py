"""Datasets: DEAP (and the synthetic DEAP-format data), PMEmo later."""
