"""``rai-audit dashboard``: an audit bundle served with its model, for the page's live features.

- ``rai_audit.live.bundle``: finds the bundle (a folder, a fetched audit, an archived audit on
  S3), verifies it, and reads what the live answers need (``LiveAudit``): the model copy
  (loaded as the constructor was allowed to load it), every test row with its predictions,
  the explainer and the counterfactual search of the run, rebuilt with the steps' own code.
- ``rai_audit.live.server``: the Starlette app (JSON API and the page) and uvicorn.

The Python entry point is ``rai_audit.dashboard.serve``.
"""
