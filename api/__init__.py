"""Switchyard's custom resources (group switchyard.dev, version v1alpha1).

`models` defines the three kinds; `capabilities` the built-in profiles and default
actions; `manifests` loads and validates YAML files for standalone mode and tests;
`crd` renders the CustomResourceDefinitions from the models.
"""
