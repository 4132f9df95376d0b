//! Core of the CutSwap augmentation: optimal 1-D k-means on saliency values, sampling of two
//! non-overlapping patch boxes anchored in the most salient cluster, and the patch swap.
//!
//! The core has no Python dependency, so `cargo test` runs without an interpreter. The
//! `python` feature adds the `cutswap._native` extension module in `bindings`.

pub mod error;
pub mod kmeans;
pub mod levels;
pub mod rng;
pub mod sampling;
pub mod swap;

#[cfg(feature = "python")]
mod bindings;

pub use error::{Error, Result};
pub use kmeans::{kmeans_1d, kmeans_labels, Clustering, MapElement, MAX_CLUSTERS};
pub use levels::{cutswap_levels, LevelNegatives, SwapMode};
pub use rng::{derive_seed, SeededRng};
pub use sampling::{
    sample_random_swap, sample_swap, sample_swap_with_clustering, Fallback, PatchBox,
    PatchSizeRange, SwapParams,
};
pub use swap::{swap_patches, validate_boxes, ImageShape};
