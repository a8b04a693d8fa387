"""LSL boundary, DEAP format and replay, buffering, windowing and incremental preprocessing."""
