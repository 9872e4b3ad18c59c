//! signaling (placeholder, being written)
