"""dive_pyro.guides"""
