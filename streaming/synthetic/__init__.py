"""streaming/synthetic"""
