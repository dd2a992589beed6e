"""dive_pyro.models"""
