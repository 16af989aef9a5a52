"""ipo_robust.plugins"""
