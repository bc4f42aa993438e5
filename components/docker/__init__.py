"""Reusable components of the Docker target: containers on one user-defined network."""
