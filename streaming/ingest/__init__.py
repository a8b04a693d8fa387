"""streaming/ingest"""
