"""streaming/lsl"""
