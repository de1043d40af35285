"""Live AWS sources: Cost Explorer, S3 data exports, CloudWatch Container Insights.

Every reader here returns the same value objects as the file readers
(:class:`~features.readers.base.ReadResult` for cost,
:class:`~features.store.UtilizationRead` for utilization), so the store, the
``--json`` accounting and the tests treat a live source like a file. ``boto3`` is
imported lazily, inside the functions that call AWS.
"""
