"""forecaster stage: models."""
