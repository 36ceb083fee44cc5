"""Sensors of the modelreg provider, one module per service."""
