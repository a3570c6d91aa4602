from .jobs import AccountMatch, ImportBreak, ImportJob, ImportKind, ImportMode, ImportStatus, imports_storage

__all__ = ["AccountMatch", "ImportBreak", "ImportJob", "ImportKind", "ImportMode", "ImportStatus", "imports_storage"]
