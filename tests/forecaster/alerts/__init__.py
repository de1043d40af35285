"""Tests of forecaster.alerts: rules, budgets, policies, delivery, feedback, CLI."""
