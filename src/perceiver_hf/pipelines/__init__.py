"""Custom pipeline tasks, registered with transformers by `import perceiver_hf`."""
