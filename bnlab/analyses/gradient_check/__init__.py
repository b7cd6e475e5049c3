"""Seed 001 section 1's gradient checks: bnlab's BN backward (checks.py) and the whole 3-layer MLP with BN
written out by hand without autograd (manual_mlp.py), against centred finite differences. The gradcheck
analysis (bnlab/analyses/gradcheck.py) writes its section from them."""
