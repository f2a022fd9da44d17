"""Dramatiq broker, actors (thin wrappers over the library) and the scheduler."""
