"""forecaster stage: experiments."""
