"""forecaster stage: optimizer."""
