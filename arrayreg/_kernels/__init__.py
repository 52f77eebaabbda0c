"""Numba kernels: scalar formulas shared by every target, CPU loops around them."""
