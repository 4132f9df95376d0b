//! One call per image for every saliency level, so a data loader crosses into native code once
//! per sample.

use crate::error::{Error, Result};
use crate::kmeans::{kmeans_1d, MapElement};
use crate::rng::derive_seed;
use crate::sampling::{
    sample_random_swap, sample_swap_with_clustering, PatchSizeRange, SwapParams,
};
use crate::swap::{check_image_len, swap_in_place, ImageShape};

/// The source of anchor pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapMode {
    /// The cluster of each level's map with the highest centroid (CutSwap).
    Saliency,
    /// Uniform over the image; the maps' values are ignored (random-swap baseline).
    Random,
}

/// The negatives of one image: `levels` copies of it, each with one swap.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelNegatives<T> {
    /// Row-major `(levels, height, width, channels)`.
    pub images: Vec<T>,
    /// The swap of each level.
    pub params: Vec<SwapParams>,
}

/// Builds one negative per level: level `l` swaps two boxes sampled from `maps[l]` with seed
/// `derive_seed(seed, [l])`.
///
/// `image` is row-major `shape`, and `maps` is row-major `(levels, height, width)`.
///
/// # Errors
/// [`Error::Shape`] when the buffers disagree with `shape` and `levels`, and the errors of
/// k-means and sampling for each level.
#[allow(clippy::too_many_arguments)]
pub fn cutswap_levels<I: Copy, M: MapElement>(
    image: &[I],
    shape: ImageShape,
    maps: &[M],
    levels: usize,
    k: usize,
    sizes: &PatchSizeRange,
    seed: u64,
    mode: SwapMode,
) -> Result<LevelNegatives<I>> {
    check_image_len(image.len(), shape)?;
    let pixels = shape.height * shape.width;
    if Some(maps.len()) != levels.checked_mul(pixels) {
        return Err(Error::shape(
            "maps",
            format!(
                "(L, {}, {}) matching the image, {} pixels per level",
                shape.height, shape.width, pixels
            ),
            format!("{} values for {levels} levels", maps.len()),
        ));
    }
    sizes.validate()?;

    let mut images = Vec::with_capacity(image.len() * levels);
    let mut params = Vec::with_capacity(levels);
    for level in 0..levels {
        let level_seed = derive_seed(seed, &[level as u64]);
        let level_params = match mode {
            SwapMode::Saliency => {
                let map = &maps[level * pixels..(level + 1) * pixels];
                let clustering = kmeans_1d(map, k)?;
                sample_swap_with_clustering(
                    map,
                    shape.height,
                    shape.width,
                    &clustering,
                    sizes,
                    level_seed,
                )?
            }
            SwapMode::Random => sample_random_swap(shape.height, shape.width, sizes, level_seed)?,
        };

        let start = images.len();
        images.extend_from_slice(image);
        swap_in_place(
            &mut images[start..],
            shape,
            &level_params.box_a,
            &level_params.box_b,
        );
        params.push(level_params);
    }
    Ok(LevelNegatives { images, params })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::sample_swap;
    use crate::swap::swap_patches;

    #[test]
    fn levels_match_single_calls() {
        let shape = ImageShape {
            height: 24,
            width: 20,
            channels: 3,
        };
        let image: Vec<u8> = (0..24 * 20 * 3).map(|i| (i % 251) as u8).collect();
        let maps: Vec<u8> = (0..3 * 24 * 20).map(|i| ((i * 7) % 256) as u8).collect();
        let sizes = PatchSizeRange::default();
        let output =
            cutswap_levels(&image, shape, &maps, 3, 3, &sizes, 42, SwapMode::Saliency).unwrap();
        assert_eq!(output.images.len(), 3 * image.len());
        for level in 0..3 {
            let map = &maps[level * 480..(level + 1) * 480];
            let params =
                sample_swap(map, 24, 20, 3, &sizes, derive_seed(42, &[level as u64])).unwrap();
            assert_eq!(params, output.params[level]);
            let expected = swap_patches(&image, shape, &params.box_a, &params.box_b).unwrap();
            assert_eq!(
                &output.images[level * image.len()..(level + 1) * image.len()],
                expected.as_slice()
            );
        }
    }

    #[test]
    fn random_mode_ignores_map_values() {
        let shape = ImageShape {
            height: 16,
            width: 16,
            channels: 1,
        };
        let image = vec![1.0f32; 256];
        let zeros = vec![0u8; 2 * 256];
        let noise: Vec<u8> = (0..2 * 256).map(|i| (i * 13 % 256) as u8).collect();
        let sizes = PatchSizeRange::default();
        let a = cutswap_levels(&image, shape, &zeros, 2, 3, &sizes, 1, SwapMode::Random).unwrap();
        let b = cutswap_levels(&image, shape, &noise, 2, 3, &sizes, 1, SwapMode::Random).unwrap();
        assert_eq!(a.params, b.params);
    }

    #[test]
    fn rejects_mismatched_maps() {
        let shape = ImageShape {
            height: 8,
            width: 8,
            channels: 1,
        };
        let error = cutswap_levels(
            &[0u8; 64],
            shape,
            &[0u8; 100],
            2,
            3,
            &PatchSizeRange::default(),
            0,
            SwapMode::Saliency,
        )
        .unwrap_err();
        assert!(matches!(
            error,
            Error::Shape {
                argument: "maps",
                ..
            }
        ));
    }
}
