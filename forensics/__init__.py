"""Data, losses, metrics and preprocessing for anti-compression facial forgery detection."""
