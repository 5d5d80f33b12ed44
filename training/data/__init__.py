"""Data the project writes itself: the prompt and rewrite templates, obfuscations, the ShapeWorld world and
its pixel judges."""
