from .imports import ImportJobAdmin

__all__ = ["ImportJobAdmin"]
