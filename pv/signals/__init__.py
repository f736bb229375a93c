"""Signal registry, label registry and the feedback loop from real-world data to labels."""
