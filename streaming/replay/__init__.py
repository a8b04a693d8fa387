"""streaming/replay"""
