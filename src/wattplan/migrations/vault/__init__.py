"""Migrations of the token vault."""
