"""Configuration: the typed trial config, the size presets and the paper's model variants as overrides."""
