"""streaming/preprocess/cvxeda"""
