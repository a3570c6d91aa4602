"""REST API of the portfolios app: instruments, market data, allocations, accounts, configurations."""
