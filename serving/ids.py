"""How the API addresses series and workloads: one scheme for every route.

Series ids (``team=nlp/project=llm-chat/service=AmazonEKS``) and workload ids
(``eks-ml-prod/nlp/llm-finetune``) hold ``/``, ``=``, parentheses, spaces, ``%``, ``+``
and any unicode, up to :data:`MAX_ID_LENGTH` characters. Every route that takes one
accepts it in two equivalent forms:

* **in the path**, percent-encoded as UTF-8 (RFC 3986): ``/v1/forecasts/{id}``,
  ``/v1/scaling/{id}``, ``/v1/scaling/{id}/keda``. A ``/`` may be sent raw or as
  ``%2F`` (both reach the same series); ``%`` must be sent as ``%25``, a space as
  ``%20``; ``+`` is a plain plus in a path (never a space).
* **as the ``id`` query parameter** of the collection route: ``/v1/forecasts?id=...``,
  ``/v1/scaling?id=...``, ``/v1/keda?id=...`` (the form for KEDA's ``metrics-api``
  scaler and ``curl --get --data-urlencode id=...``). Query strings are form-encoded:
  there a ``+`` means a space, so a plus in an id is sent as ``%2B``.

The list routes (``/v1/series``, ``/v1/workloads``) give each item an ``href`` (and a
workload its ``keda_href``) already encoded this way, relative to the server's base URL.
One id is ambiguous in the path form: a workload id ending in ``/keda`` would read as the
KEDA route of its prefix, so its links use the query form. The filters of
``/v1/anomalies`` and ``/v1/recommendations`` (``team``, ``service``, ``workload_id``)
are query parameters, form-encoded the same way.

>>> quote_id("team=nlp/project=llm chat")
'team%3Dnlp%2Fproject%3Dllm%20chat'
>>> scaling_href("eks-ml-prod/nlp/llm-finetune")
'/v1/scaling/eks-ml-prod%2Fnlp%2Fllm-finetune'
>>> scaling_href("svc/keda")
'/v1/scaling?id=svc%2Fkeda'
"""

from __future__ import annotations

from urllib.parse import quote

#: Longest id any route accepts.
MAX_ID_LENGTH = 512

#: The addressing scheme in the OpenAPI description (Markdown).
ADDRESSING = """
### Addressing series and workloads

Ids may hold `/`, `=`, `(`, `)`, spaces, `%`, `+` and any unicode, up to 512 characters.
Every route that takes an id accepts it in two equivalent forms:

* **in the path**, percent-encoded as UTF-8: `/v1/forecasts/{id}`, `/v1/scaling/{id}`,
  `/v1/scaling/{id}/keda`. A `/` may be sent raw or as `%2F`; `%` is sent as `%25`, a
  space as `%20`; a `+` in a path is a plain plus.
  Example: `/v1/forecasts/team%3Dnlp%2Fproject%3Dllm-chat%2Fservice%3DAmazonEKS`.
* **as the `id` query parameter**: `/v1/forecasts?id=...`, `/v1/scaling?id=...`,
  `/v1/keda?id=...` (for KEDA's `metrics-api` scaler, or
  `curl --get --data-urlencode "id=eks-ml-prod/nlp/llm-finetune"`). A query string is
  form-encoded: a `+` there means a space, so send a plus as `%2B`.

`/v1/series` and `/v1/workloads` give each item a ready-to-use `href` (workloads also a
`keda_href`), relative to the server's base URL. A workload id ending in `/keda` reads as
the KEDA route of its prefix in the path form, so its links use the query form. The
filters of `/v1/anomalies` and `/v1/recommendations` are query parameters, encoded the
same way. An unknown id is answered 404 naming it.
"""


def quote_id(unique_id: str) -> str:
    """The id as one path segment: every character but RFC 3986 unreserved ones encoded.

    ``/`` becomes ``%2F`` (so no client or proxy merges or normalizes slashes in it) and
    the dot segments ``.`` and ``..`` are encoded too (clients would resolve them away).
    """
    if unique_id.strip(".") == "":
        return unique_id.replace(".", "%2E")
    return quote(unique_id, safe="")


def _query(base: str, unique_id: str) -> str:
    return f"{base}?id={quote_id(unique_id)}"


def forecast_href(unique_id: str) -> str:
    """``/v1/forecasts/{id}``, encoded."""
    return f"/v1/forecasts/{quote_id(unique_id)}"


def scaling_href(workload_id: str) -> str:
    """``/v1/scaling/{id}``, encoded (the query form for an id ending in ``/keda``)."""
    if workload_id.endswith("/keda"):
        return _query("/v1/scaling", workload_id)
    return f"/v1/scaling/{quote_id(workload_id)}"


def keda_href(workload_id: str) -> str:
    """``/v1/scaling/{id}/keda``, encoded (the query form for an id ending in ``/keda``)."""
    if workload_id.endswith("/keda"):
        return _query("/v1/keda", workload_id)
    return f"/v1/scaling/{quote_id(workload_id)}/keda"
