"""Switchyard's custom resources (group switchyard.dev, version v1alpha1).

`models` defines the three kinds' specs and `status` what the operator reports on them;
`capabilities` the built-in profiles and default actions; `manifests` loads and validates
YAML files for standalone mode and tests. `crd` renders the CustomResourceDefinitions from
the models (schemas from `openapi`, CEL rules from `cel`) and writes them with the
resource reference that `reference` renders from them (`python -m switchyard.api.crd`).
"""
