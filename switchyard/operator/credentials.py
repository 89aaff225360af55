"""Which Secrets the operator may read as a ModelSource's credential (the confused-deputy guard).

Whoever may create a ModelSource chooses both the Secret (``credentialRef``) and where
the operator sends it (``baseURL``, for the catalog check; the sidecars, for requests).
Without a guard, that person could have the operator read any Secret of the namespace,
including ones they may not read themselves, and send it as ``Authorization: Bearer``
to a server of their choosing. So:

- the operator watches and lists only Secrets labelled ``switchyard.dev/credential:
  "true"`` (``CREDENTIAL_SELECTOR``, a *server-side* label selector: other Secrets never
  reach the operator's memory), and never GETs a credential by name;
- Secrets carrying the chart's ``app.kubernetes.io/part-of: switchyard`` label (the
  admin token, the webhook certificate) are excluded by the same selector, and the
  sidecars' admin-token Secret is refused by name even if someone labels it;
- a ModelSource naming any other Secret is ``CredentialValid=False`` with reason
  ``SecretNotMarked`` (or ``SecretReserved``), its tiers are unresolvable for the same
  reason, and nothing is read or sent anywhere. The operator cannot tell a missing
  Secret from an unmarked one (it may not look), so a deleted credential Secret is
  ``SecretNotMarked`` too; the message says both.

Labelling a Secret is the Secret owner's consent: whoever may label it may read it.
"""

from __future__ import annotations

from collections.abc import Collection

from switchyard.compiler.compile import SECRET_NOT_MARKED, SECRET_RESERVED, CredentialRefused

CREDENTIAL_LABEL = "switchyard.dev/credential"
CHART_LABEL = "app.kubernetes.io/part-of"
CREDENTIAL_SELECTOR = f"{CREDENTIAL_LABEL}=true,{CHART_LABEL}!=switchyard"
"""The label selector of the operator's Secret watch (sent to the API server)."""


def marked(labels: dict[str, str] | None) -> bool:
    """What ``CREDENTIAL_SELECTOR`` selects (checked again on every object received)."""
    labels = labels or {}
    return labels.get(CREDENTIAL_LABEL) == "true" and labels.get(CHART_LABEL) != "switchyard"


def refusal(name: str, namespace: str, *, reserved: Collection[str], known: bool) -> CredentialRefused | None:
    """Why ``name`` may not be used as a credential (None: it may). ``known``: a Secret
    of that name is among the marked ones the operator watches."""
    if name in reserved:
        return CredentialRefused(
            SECRET_RESERVED,
            f"Secret {name} belongs to Switchyard itself (the sidecars' admin token) and is never used as a credential",
        )
    if not known:
        return CredentialRefused(
            SECRET_NOT_MARKED,
            f"no Secret {name} labelled {CREDENTIAL_LABEL}=true in namespace {namespace} "
            "(the operator reads no other Secret: create it with that label, or label it)",
        )
    return None
