"""ipo_robust.evals"""
