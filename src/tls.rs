//! TLS for STARTTLS (placeholder; being written).
