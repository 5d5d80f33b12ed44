"""Training and evaluation data the project writes itself (no outside data)."""
