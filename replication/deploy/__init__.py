"""Deployment beyond PyTorch: exporting plain networks and timing them in other runtimes."""
