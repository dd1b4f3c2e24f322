//! palisade-synth
