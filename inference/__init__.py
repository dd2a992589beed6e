"""dive_pyro.inference"""
