"""Revisions of the plan store, oldest first."""
