//! SENDDATA's MIME envelope (placeholder; being written).
