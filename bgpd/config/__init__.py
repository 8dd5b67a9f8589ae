"""Configuration: the model (``model``) and its TOML surface (``toml``)."""
