//! The process's one throttle (placeholder).
