"""ipo_robust.envs"""
