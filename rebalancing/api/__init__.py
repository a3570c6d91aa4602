"""REST API of the rebalancing app: preferences, previews, floating-weight constituents."""
