//! media-blob (placeholder, being written)
