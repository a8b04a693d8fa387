"""streaming/formats"""
