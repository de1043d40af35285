"""Alerts from the FinOps playbook: rules, budgets, policies as code, delivery, feedback.

* :mod:`forecaster.alerts.base`: the :class:`Alert` value object, :class:`AlertContext`
  (what rules read) and the :class:`Rule` interface.
* :mod:`forecaster.alerts.rules`: daily threshold, spikes, idle GPUs, untagged spend,
  spot policy, streaming cost-anomaly detection with root causes.
* :mod:`forecaster.alerts.budgets`: monthly budgets, 80 % consumed and "will exceed on
  DATE with probability P".
* :mod:`forecaster.alerts.policies`: the YAML policy file (pydantic-validated).
* :mod:`forecaster.alerts.delivery`: Slack-compatible webhook and AWS SNS, retries,
  de-duplication, dry run.
* :mod:`forecaster.alerts.feedback`: analyst verdicts, suppression, known events.
* :mod:`forecaster.alerts.engine` and :mod:`forecaster.alerts.evaluation`: running on the
  store, and scoring against labelled anomalies.
"""

from forecaster.alerts.base import (
    Alert,
    AlertContext,
    Evaluation,
    KnownEvent,
    Rule,
    evaluate_rules,
)
from forecaster.alerts.budgets import (
    Budget,
    BudgetForecast,
    BudgetThreshold,
    Projection,
    RunRateProjector,
    SpendProjector,
)
from forecaster.alerts.delivery import (
    Dispatcher,
    RetryPolicy,
    SentLog,
    SnsNotifier,
    WebhookNotifier,
)
from forecaster.alerts.feedback import FeedbackStore
from forecaster.alerts.policies import Policy, check_policy, default_rules, load_policy
from forecaster.alerts.rules import (
    CostAnomaly,
    CostChange,
    DailySpendThreshold,
    IdleResources,
    SpendSpike,
    SpotPolicy,
    UntaggedSpend,
)

__all__ = [
    "Alert",
    "AlertContext",
    "Budget",
    "BudgetForecast",
    "BudgetThreshold",
    "CostAnomaly",
    "CostChange",
    "DailySpendThreshold",
    "Dispatcher",
    "Evaluation",
    "FeedbackStore",
    "IdleResources",
    "KnownEvent",
    "Policy",
    "Projection",
    "RetryPolicy",
    "Rule",
    "RunRateProjector",
    "SentLog",
    "SnsNotifier",
    "SpendProjector",
    "SpendSpike",
    "SpotPolicy",
    "UntaggedSpend",
    "WebhookNotifier",
    "check_policy",
    "default_rules",
    "evaluate_rules",
    "load_policy",
]
