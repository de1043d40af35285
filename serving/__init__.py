"""forecaster stage: serving."""
