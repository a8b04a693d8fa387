"""Incremental preprocessing shared by training (whole trials) and serving (sliding windows).

Every stateful transform here gives the same output however its input is chunked, so the
training code and the streaming path call the same functions (DESIGN.md §3.3).
"""
