"""Pollinator."""
