"""forecaster: FinOps forecasting and recommendation engine for AI containers on AWS."""

__version__ = "0.1.0"
