"""Incremental preprocessing shared by training (whole trials) and serving (sliding windows).

Every stateful transform here gives the same output however its input is chunked, so the
training and streaming call the same functions (docs/architecture.md#preprocessing-parity).
"""
