"""ipo-robust: Interactive Robust Policy Optimization for two-agent reinforcement learning."""

__version__ = "0.1.0"
