//! Frame scaling lives in `hearth_media::scale` (the engine scales camera frames too).

pub use hearth_media::scale::{scale_i420, target_size};
