"""Attacks on frozen agents (the attack plugins are being written)."""

ATTACKS: dict = {}
