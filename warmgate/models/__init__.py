"""Model backends. Nothing here knows HTTP; see ``warmgate.models.base`` for the contract."""
