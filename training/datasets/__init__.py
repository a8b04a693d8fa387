"""Datasets: DEAP and PMEmo readers (the synthetic generators write the same formats)."""
