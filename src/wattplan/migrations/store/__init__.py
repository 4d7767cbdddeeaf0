"""Migrations of the plan store."""
