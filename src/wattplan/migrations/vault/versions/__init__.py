"""Revisions of the token vault, oldest first."""
