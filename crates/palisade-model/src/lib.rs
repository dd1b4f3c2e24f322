//! palisade-model
