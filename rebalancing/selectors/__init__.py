"""Reads of the rebalancing app, each in a fixed number of queries: `book` loads what
the engine needs for a set of accounts; `orders` reads trade orders for the dealing
desk (blotter, CSV rows)."""
