//! Sampling of the two swap boxes: patch size first, then two anchors (top-left corners).
//!
//! The patch area ratio is uniform in `area` and the aspect ratio (height / width) is
//! log-uniform in `aspect`. With `N = height * width` of the image, the patch is
//! `round(sqrt(a * N * r))` rows by `round(sqrt(a * N / r))` columns, each clamped to
//! `[1, image side]`.
//!
//! Anchors are drawn uniformly over the ordered pairs of candidate pixels whose patches fit
//! the image and do not overlap. Cheap rejection sampling runs first; when it keeps missing,
//! an exact method counts, for every candidate, its non-overlapping partners with 2-D prefix
//! sums and draws from those counts. Both steps draw from the same uniform distribution, so
//! the mixture is uniform too.
//!
//! Saliency-guided sampling takes candidates from the cluster with the highest centroid.
//! When that cluster has no valid pair, it falls back, in order, to smaller patches in the
//! same cluster (sides halved up to [`MAX_HALVINGS`] times), then to the other clusters in
//! descending centroid order (every size), then to the whole image (halving down to 1 x 1
//! if needed). The first fallback that succeeds is reported.

use crate::error::{Error, Result};
use crate::kmeans::{kmeans_1d, Clustering, MapElement};
use crate::rng::{portable_exp, portable_ln, SeededRng};

/// How many times smaller-patch and next-cluster fallbacks halve the patch sides.
pub const MAX_HALVINGS: usize = 2;

/// Pair attempts in the rejection step before switching to the exact method.
const MAX_PAIR_ATTEMPTS: usize = 16;

/// Uniform pixel draws per anchor in the rejection step before switching to the exact method.
const MAX_ANCHOR_DRAWS: usize = 64;

/// An axis-aligned patch: top-left corner `(y, x)` and size `(height, width)` in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchBox {
    pub y: usize,
    pub x: usize,
    pub height: usize,
    pub width: usize,
}

impl PatchBox {
    /// Returns true when the two boxes share at least one pixel.
    pub fn overlaps(&self, other: &PatchBox) -> bool {
        self.y < other.y + other.height
            && other.y < self.y + self.height
            && self.x < other.x + other.width
            && other.x < self.x + self.width
    }

    /// Returns true when the box is non-empty and lies inside a `height x width` image.
    pub fn fits(&self, height: usize, width: usize) -> bool {
        self.height >= 1
            && self.width >= 1
            && self.y + self.height <= height
            && self.x + self.width <= width
    }
}

/// Which fallback produced the anchors when the salient cluster had no valid pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Smaller patches in the salient cluster.
    SmallerPatch,
    /// A cluster with a lower centroid.
    NextCluster,
    /// Anchors uniform over the whole image.
    Anywhere,
}

impl Fallback {
    /// Returns the name used in Python: `"smaller_patch"`, `"next_cluster"` or `"anywhere"`.
    pub fn name(self) -> &'static str {
        match self {
            Fallback::SmallerPatch => "smaller_patch",
            Fallback::NextCluster => "next_cluster",
            Fallback::Anywhere => "anywhere",
        }
    }
}

/// The sampled parameters of one swap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwapParams {
    pub box_a: PatchBox,
    pub box_b: PatchBox,
    /// Centroid of the cluster the anchors came from; the map mean for `Anywhere`, and 0.0 for
    /// random swaps, which have no map.
    pub centroid: f32,
    /// Pixels in that cluster (the whole image for `Anywhere` and random swaps).
    pub cluster_size: u64,
    /// `None` when the anchors came from the salient cluster at the sampled size.
    pub fallback: Option<Fallback>,
}

/// The ranges patch sizes are drawn from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PatchSizeRange {
    /// Area ratio (patch area / image area) bounds, `0 < min <= max < 1`.
    pub area: (f64, f64),
    /// Aspect ratio (height / width) bounds, `0 < min <= max`, both finite.
    pub aspect: (f64, f64),
}

impl Default for PatchSizeRange {
    /// The CutPaste settings: area ratio in [0.02, 0.15], aspect ratio in [0.3, 3.3].
    fn default() -> Self {
        Self {
            area: (0.02, 0.15),
            aspect: (0.3, 3.3),
        }
    }
}

impl PatchSizeRange {
    /// Checks the bounds.
    ///
    /// # Errors
    /// [`Error::Value`] naming `area` or `aspect` when a bound is out of range or unordered.
    pub fn validate(&self) -> Result<()> {
        let (area_min, area_max) = self.area;
        let area_valid = area_min > 0.0 && area_max < 1.0 && area_min <= area_max;
        if !area_valid {
            return Err(Error::value(
                "area",
                "(min, max) with 0 < min <= max < 1",
                format!("({area_min}, {area_max})"),
            ));
        }
        let (aspect_min, aspect_max) = self.aspect;
        let aspect_valid = aspect_min > 0.0 && aspect_max.is_finite() && aspect_min <= aspect_max;
        if !aspect_valid {
            return Err(Error::value(
                "aspect",
                "(min, max) with 0 < min <= max < inf",
                format!("({aspect_min}, {aspect_max})"),
            ));
        }
        Ok(())
    }

    /// Draws a patch size for a `height x width` image: area, then aspect, two draws in total.
    pub fn sample(&self, rng: &mut SeededRng, height: usize, width: usize) -> (usize, usize) {
        let area_ratio = rng.uniform(self.area.0, self.area.1);
        let log_aspect = rng.uniform(portable_ln(self.aspect.0), portable_ln(self.aspect.1));
        let aspect = portable_exp(log_aspect);
        let patch_area = area_ratio * (height as f64) * (width as f64);

        // Float-to-int casts saturate, and the clamps keep the size inside the image.
        let patch_height = ((patch_area * aspect).sqrt().round() as usize).clamp(1, height);
        let patch_width = ((patch_area / aspect).sqrt().round() as usize).clamp(1, width);
        (patch_height, patch_width)
    }
}

/// Checks that the image can hold two non-overlapping patches at all.
fn check_image_size(height: usize, width: usize) -> Result<()> {
    let pixels = height.saturating_mul(width);
    if pixels < 2 {
        return Err(Error::shape(
            "image",
            "at least 2 pixels, so two non-overlapping 1 x 1 patches fit",
            format!("({height}, {width})"),
        ));
    }
    Ok(())
}

/// Returns `(height, width)` followed by the sizes with both sides halved (floor, at least
/// 1), `halvings` times or until 1 x 1, without repeats.
fn halved_sizes(height: usize, width: usize, halvings: usize) -> Vec<(usize, usize)> {
    let mut sizes = vec![(height, width)];
    let (mut h, mut w) = (height, width);
    for _ in 0..halvings {
        if (h, w) == (1, 1) {
            break;
        }
        h = (h / 2).max(1);
        w = (w / 2).max(1);
        sizes.push((h, w));
    }
    sizes
}

/// Draws two non-overlapping `patch_height x patch_width` boxes whose top-left corners both
/// satisfy `is_candidate(flat index)`, uniformly over all such ordered pairs, or returns
/// `None` when no pair exists.
fn sample_pair(
    rng: &mut SeededRng,
    height: usize,
    width: usize,
    patch_height: usize,
    patch_width: usize,
    is_candidate: &impl Fn(usize) -> bool,
) -> Option<(PatchBox, PatchBox)> {
    if patch_height > height || patch_width > width {
        return None;
    }
    let rows = height - patch_height + 1;
    let columns = width - patch_width + 1;
    let make_box = |(y, x): (usize, usize)| PatchBox {
        y,
        x,
        height: patch_height,
        width: patch_width,
    };

    let draw_anchor = |rng: &mut SeededRng| -> Option<(usize, usize)> {
        for _ in 0..MAX_ANCHOR_DRAWS {
            let y = rng.index(rows);
            let x = rng.index(columns);
            if is_candidate(y * width + x) {
                return Some((y, x));
            }
        }
        None
    };

    for _ in 0..MAX_PAIR_ATTEMPTS {
        let Some(first) = draw_anchor(rng) else { break };
        let Some(second) = draw_anchor(rng) else {
            break;
        };
        let (box_a, box_b) = (make_box(first), make_box(second));
        if !box_a.overlaps(&box_b) {
            return Some((box_a, box_b));
        }
    }

    sample_pair_exact(
        rng,
        width,
        rows,
        columns,
        patch_height,
        patch_width,
        is_candidate,
    )
    .map(|(first, second)| (make_box(first), make_box(second)))
}

/// The exact step of [`sample_pair`]: draws the first anchor with probability proportional to
/// its number of non-overlapping partners, then the second uniformly among those partners.
fn sample_pair_exact(
    rng: &mut SeededRng,
    width: usize,
    rows: usize,
    columns: usize,
    patch_height: usize,
    patch_width: usize,
    is_candidate: &impl Fn(usize) -> bool,
) -> Option<((usize, usize), (usize, usize))> {
    // prefix[(y) * (columns + 1) + x] counts candidates in anchor rows < y and columns < x.
    let stride = columns + 1;
    let mut prefix = vec![0u64; (rows + 1) * stride];
    let mut candidates = Vec::new();
    for y in 0..rows {
        let mut row_count = 0u64;
        for x in 0..columns {
            if is_candidate(y * width + x) {
                row_count += 1;
                candidates.push((y, x));
            }
            prefix[(y + 1) * stride + x + 1] = prefix[y * stride + x + 1] + row_count;
        }
    }
    let total = candidates.len() as u64;
    if total < 2 {
        return None;
    }

    // Anchors whose patches overlap the patch at (y, x) lie in this window of anchor space.
    let window = |y: usize, x: usize| {
        let top = y.saturating_sub(patch_height - 1);
        let bottom = (y + patch_height).min(rows);
        let left = x.saturating_sub(patch_width - 1);
        let right = (x + patch_width).min(columns);
        (top, bottom, left, right)
    };
    let count_in = |(top, bottom, left, right): (usize, usize, usize, usize)| {
        prefix[bottom * stride + right] + prefix[top * stride + left]
            - prefix[top * stride + right]
            - prefix[bottom * stride + left]
    };
    let partners = |&(y, x): &(usize, usize)| total - count_in(window(y, x));

    let pair_count: u64 = candidates.iter().map(partners).sum();
    if pair_count == 0 {
        return None;
    }

    let mut target = rng.below(pair_count);
    let mut first = candidates[0];
    let mut first_partners = 0;
    for candidate in &candidates {
        let count = partners(candidate);
        if target < count {
            first = *candidate;
            first_partners = count;
            break;
        }
        target -= count;
    }

    let (top, bottom, left, right) = window(first.0, first.1);
    let mut target = rng.below(first_partners);
    for &(y, x) in &candidates {
        let overlapping = (top..bottom).contains(&y) && (left..right).contains(&x);
        if overlapping {
            continue;
        }
        if target == 0 {
            return Some((first, (y, x)));
        }
        target -= 1;
    }
    None
}

/// Samples swap boxes guided by an already computed clustering of `map`.
///
/// # Errors
/// [`Error::Shape`] when `map` does not have `height * width` pixels or the image has fewer
/// than 2 pixels, [`Error::Value`] for invalid `sizes`.
pub fn sample_swap_with_clustering<T: MapElement>(
    map: &[T],
    height: usize,
    width: usize,
    clustering: &Clustering<T>,
    sizes: &PatchSizeRange,
    seed: u64,
) -> Result<SwapParams> {
    check_image_size(height, width)?;
    if map.len() != height * width {
        return Err(Error::shape(
            "saliency",
            format!("{height} * {width} = {} pixels", height * width),
            format!("{} pixels", map.len()),
        ));
    }
    sizes.validate()?;

    let mut rng = SeededRng::new(seed);
    let (patch_height, patch_width) = sizes.sample(&mut rng, height, width);
    let limited_sizes = halved_sizes(patch_height, patch_width, MAX_HALVINGS);
    let all_sizes = halved_sizes(patch_height, patch_width, usize::BITS as usize);

    let params = |(box_a, box_b), cluster: usize, fallback| SwapParams {
        box_a,
        box_b,
        centroid: clustering.centroids[cluster],
        cluster_size: clustering.sizes[cluster],
        fallback,
    };

    // The salient cluster, at the sampled size and then smaller.
    let top = clustering.len() - 1;
    let in_top = |index: usize| clustering.contains(top, map[index]);
    for (attempt, &(h, w)) in limited_sizes.iter().enumerate() {
        if let Some(pair) = sample_pair(&mut rng, height, width, h, w, &in_top) {
            let fallback = (attempt > 0).then_some(Fallback::SmallerPatch);
            return Ok(params(pair, top, fallback));
        }
    }

    // The other clusters, from the highest centroid down.
    for cluster in (0..top).rev() {
        let in_cluster = |index: usize| clustering.contains(cluster, map[index]);
        for &(h, w) in &limited_sizes {
            if let Some(pair) = sample_pair(&mut rng, height, width, h, w, &in_cluster) {
                return Ok(params(pair, cluster, Some(Fallback::NextCluster)));
            }
        }
    }

    // Anywhere: with at least 2 pixels, some size down to 1 x 1 always fits twice.
    let anywhere = |_: usize| true;
    for &(h, w) in &all_sizes {
        if let Some((box_a, box_b)) = sample_pair(&mut rng, height, width, h, w, &anywhere) {
            return Ok(SwapParams {
                box_a,
                box_b,
                centroid: clustering.mean,
                cluster_size: (height * width) as u64,
                fallback: Some(Fallback::Anywhere),
            });
        }
    }
    Err(Error::shape(
        "image",
        "room for two non-overlapping patches",
        format!("({height}, {width})"),
    ))
}

/// Clusters `map` (`height x width`, row-major) with 1-D k-means and samples swap boxes whose
/// anchors come from the cluster with the highest centroid, with the fallbacks in the module
/// documentation.
///
/// # Errors
/// As [`kmeans_1d`] and [`sample_swap_with_clustering`].
pub fn sample_swap<T: MapElement>(
    map: &[T],
    height: usize,
    width: usize,
    k: usize,
    sizes: &PatchSizeRange,
    seed: u64,
) -> Result<SwapParams> {
    if map.len() != height.saturating_mul(width) {
        return Err(Error::shape(
            "saliency",
            format!("{height} * {width} pixels"),
            format!("{} pixels", map.len()),
        ));
    }
    let clustering = kmeans_1d(map, k)?;
    sample_swap_with_clustering(map, height, width, &clustering, sizes, seed)
}

/// Samples swap boxes with anchors uniform over the image, the random-swap baseline. Sizes
/// follow the same rules as [`sample_swap`], halving only when the sampled size cannot fit
/// twice (reported as `Fallback::SmallerPatch`).
///
/// # Errors
/// [`Error::Shape`] when the image has fewer than 2 pixels, [`Error::Value`] for invalid
/// `sizes`.
pub fn sample_random_swap(
    height: usize,
    width: usize,
    sizes: &PatchSizeRange,
    seed: u64,
) -> Result<SwapParams> {
    check_image_size(height, width)?;
    sizes.validate()?;

    let mut rng = SeededRng::new(seed);
    let (patch_height, patch_width) = sizes.sample(&mut rng, height, width);
    let anywhere = |_: usize| true;
    for (attempt, &(h, w)) in halved_sizes(patch_height, patch_width, usize::BITS as usize)
        .iter()
        .enumerate()
    {
        if let Some((box_a, box_b)) = sample_pair(&mut rng, height, width, h, w, &anywhere) {
            return Ok(SwapParams {
                box_a,
                box_b,
                centroid: 0.0,
                cluster_size: (height * width) as u64,
                fallback: (attempt > 0).then_some(Fallback::SmallerPatch),
            });
        }
    }
    Err(Error::shape(
        "image",
        "room for two non-overlapping patches",
        format!("({height}, {width})"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_params(params: &SwapParams, height: usize, width: usize) {
        assert!(params.box_a.fits(height, width), "{params:?}");
        assert!(params.box_b.fits(height, width), "{params:?}");
        assert!(!params.box_a.overlaps(&params.box_b), "{params:?}");
        assert_eq!(params.box_a.height, params.box_b.height);
        assert_eq!(params.box_a.width, params.box_b.width);
    }

    #[test]
    fn anchors_come_from_salient_cluster() {
        let (height, width) = (64, 64);
        let mut map = vec![10u8; height * width];
        for y in 5..40 {
            for x in 10..50 {
                map[y * width + x] = 250;
            }
        }
        for seed in 0..200 {
            let params =
                sample_swap(&map, height, width, 2, &PatchSizeRange::default(), seed).unwrap();
            check_params(&params, height, width);
            assert_eq!(params.fallback, None);
            assert_eq!(params.centroid, 250.0);
            for anchor in [params.box_a, params.box_b] {
                assert_eq!(map[anchor.y * width + anchor.x], 250);
            }
        }
    }

    #[test]
    fn same_seed_same_params() {
        let map: Vec<f32> = (0..32 * 48)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        let sizes = PatchSizeRange::default();
        let a = sample_swap(&map, 32, 48, 3, &sizes, 9).unwrap();
        let b = sample_swap(&map, 32, 48, 3, &sizes, 9).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn single_salient_pixel_falls_back() {
        let (height, width) = (32, 32);
        let mut map = vec![0u8; height * width];
        map[5 * width + 5] = 255;
        let params = sample_swap(&map, height, width, 2, &PatchSizeRange::default(), 1).unwrap();
        check_params(&params, height, width);
        assert_eq!(params.fallback, Some(Fallback::NextCluster));
        assert_eq!(params.centroid, 0.0);
    }

    #[test]
    fn narrow_salient_strip_uses_smaller_patch() {
        // Salient pixels only in a 2 x 9 strip: only patches small enough to sit side by side
        // with both anchors in the strip work.
        let (height, width) = (40, 40);
        let mut map = vec![0u8; height * width];
        for y in 20..22 {
            for x in 0..9 {
                map[y * width + x] = 200;
            }
        }
        let sizes = PatchSizeRange {
            area: (0.1, 0.1),
            aspect: (1.0, 1.0),
        };
        let params = sample_swap(&map, height, width, 2, &sizes, 4).unwrap();
        check_params(&params, height, width);
        assert_eq!(params.fallback, Some(Fallback::SmallerPatch));
    }

    #[test]
    fn constant_map_uses_whole_image_without_fallback() {
        let map = vec![0u8; 20 * 30];
        let params = sample_swap(&map, 20, 30, 3, &PatchSizeRange::default(), 0).unwrap();
        check_params(&params, 20, 30);
        assert_eq!(params.fallback, None);
        assert_eq!(params.cluster_size, 600);
    }

    #[test]
    fn tiny_images() {
        let sizes = PatchSizeRange {
            area: (0.9, 0.95),
            aspect: (1.0, 1.0),
        };
        let params = sample_random_swap(1, 2, &sizes, 0).unwrap();
        check_params(&params, 1, 2);
        let params = sample_swap(&[3u8, 3, 3, 3], 2, 2, 1, &sizes, 0).unwrap();
        check_params(&params, 2, 2);
        assert_eq!(params.fallback, Some(Fallback::SmallerPatch));
        assert!(matches!(
            sample_random_swap(1, 1, &sizes, 0),
            Err(Error::Shape {
                argument: "image",
                ..
            })
        ));
        assert!(sample_swap(&[1u8], 1, 1, 1, &sizes, 0).is_err());
    }

    #[test]
    fn random_swap_fits_for_many_seeds() {
        for seed in 0..300 {
            let params = sample_random_swap(17, 23, &PatchSizeRange::default(), seed).unwrap();
            check_params(&params, 17, 23);
        }
    }

    #[test]
    fn exact_step_is_uniform_over_pairs() {
        // On a 1 x 4 image with 1 x 2 patches only anchors (0, 0) and (0, 2) are valid, as an
        // ordered pair in either order; the exact step must produce both orders.
        let mut rng = SeededRng::new(5);
        let mut seen = [0usize; 2];
        let any = |_: usize| true;
        for _ in 0..200 {
            let (a, b) = sample_pair_exact(&mut rng, 4, 1, 3, 1, 2, &any).unwrap();
            assert_eq!(a.0, 0);
            assert!((a.1 == 0 && b.1 == 2) || (a.1 == 2 && b.1 == 0));
            seen[usize::from(a.1 == 2)] += 1;
        }
        assert!(seen[0] > 60 && seen[1] > 60, "{seen:?}");
    }

    #[test]
    fn rejects_bad_sizes() {
        let map = vec![0u8; 100];
        let bad_area = PatchSizeRange {
            area: (0.2, 0.1),
            aspect: (0.3, 3.3),
        };
        assert!(matches!(
            sample_swap(&map, 10, 10, 2, &bad_area, 0),
            Err(Error::Value {
                argument: "area",
                ..
            })
        ));
        let bad_aspect = PatchSizeRange {
            area: (0.02, 0.15),
            aspect: (0.0, 3.3),
        };
        assert!(matches!(
            sample_random_swap(10, 10, &bad_aspect, 0),
            Err(Error::Value {
                argument: "aspect",
                ..
            })
        ));
        let nan_area = PatchSizeRange {
            area: (f64::NAN, 0.15),
            aspect: (0.3, 3.3),
        };
        assert!(nan_area.validate().is_err());
        assert!(matches!(
            sample_swap(&map, 10, 9, 2, &PatchSizeRange::default(), 0),
            Err(Error::Shape {
                argument: "saliency",
                ..
            })
        ));
    }
}
