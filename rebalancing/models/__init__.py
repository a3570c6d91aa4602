from .automation import ClaimOutcome, SavingsInterval, SavingsPlan, SavingsPlanRun, Strategy, StrategyRun, StrategyType
from .drift import AccountDrift
from .executions import (
    EXECUTION_ENDED,
    AccountLease,
    ChunkStatus,
    Execution,
    ExecutionChunk,
    ExecutionResult,
    ExecutionStatus,
    ResultStatus,
    Trigger,
)
from .orders import (
    ExecutionMethod,
    Initiation,
    PortfolioOrder,
    PortfolioOrderStatus,
    Side,
    TradeOrder,
    TradeOrderStatus,
)
from .preferences import AvailableCash, Method, OrderBasis, RebalancePreferences

__all__ = [
    "AccountDrift",
    "EXECUTION_ENDED",
    "AccountLease",
    "AvailableCash",
    "ChunkStatus",
    "ClaimOutcome",
    "Execution",
    "ExecutionChunk",
    "ExecutionMethod",
    "ExecutionResult",
    "ExecutionStatus",
    "Initiation",
    "Method",
    "OrderBasis",
    "PortfolioOrder",
    "PortfolioOrderStatus",
    "RebalancePreferences",
    "ResultStatus",
    "SavingsInterval",
    "SavingsPlan",
    "SavingsPlanRun",
    "Side",
    "Strategy",
    "StrategyRun",
    "StrategyType",
    "TradeOrder",
    "TradeOrderStatus",
    "Trigger",
]
