"""SAQ worker settings and the core's task functions."""
