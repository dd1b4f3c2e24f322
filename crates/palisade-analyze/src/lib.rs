//! palisade-analyze
