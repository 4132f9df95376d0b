//! Sampling of the two swap boxes: patch size first, then two anchors (top-left corners).
//!
//! The patch area ratio is uniform in `area` and the aspect ratio (height / width) is
//! log-uniform in `aspect`. With `N = height * width` of the image, the patch is
//! `round(sqrt(a * N * r))` rows by `round(sqrt(a * N / r))` columns, each clamped to
//! `[1, image side]`.
//!
//! Anchors are drawn uniformly over the ordered pairs of candidate pixels whose patches fit
//! the image and do not overlap. Rejection sampling on random pixels runs first. When it
//! keeps missing, rejection runs on the list of candidates, and then an exact method counts
//! the non-overlapping partners of every candidate with 2-D prefix sums and draws from those
//! counts. Each step draws from the same uniform distribution, so the mixture is uniform too.
//!
//! Saliency-guided sampling takes candidates from the cluster with the highest centroid.
//! When that cluster has no valid pair, the sampler tries smaller patches in the same cluster
//! (sides halved up to [`MAX_HALVINGS`] times). Next come the other clusters in descending
//! centroid order, at the sampled size and those halved sizes. Last comes the whole image,
//! halving down to 1 x 1 if needed. The first fallback that succeeds is reported.

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

/// The fallback that produced the anchors when the salient cluster had no valid pair.
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
    /// Returns the CutPaste settings: area ratio in [0.02, 0.15], aspect ratio in [0.3, 3.3].
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

/// The largest supported image, in pixels. Pair counts over the anchor grid are squares of
/// pixel counts, and 2^32 pixels keeps them within `u128`; no real image comes close.
pub const MAX_PIXELS: u64 = 1 << 32;

/// Checks that the image can hold two non-overlapping patches and is not larger than
/// [`MAX_PIXELS`].
fn check_image_size(height: usize, width: usize) -> Result<()> {
    let pixels = (height as u128) * (width as u128);
    if pixels < 2 {
        return Err(Error::shape(
            "image",
            "at least 2 pixels, so two non-overlapping 1 x 1 patches fit",
            format!("({height}, {width})"),
        ));
    }
    if pixels > u128::from(MAX_PIXELS) {
        return Err(Error::shape(
            "image",
            format!("at most {MAX_PIXELS} pixels"),
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

/// The pixels that may serve as anchors.
enum Membership<'a, T> {
    /// Pixels of `map` with a value in `lower..=upper`: one k-means cluster.
    Range { map: &'a [T], lower: T, upper: T },
    /// Every pixel.
    Everywhere,
}

impl<T: MapElement> Membership<'_, T> {
    fn contains(&self, index: usize) -> bool {
        match self {
            Membership::Range { map, lower, upper } => {
                let value = map[index];
                value >= *lower && value <= *upper
            }
            Membership::Everywhere => true,
        }
    }

    /// Returns the positions `(y, x)` of all members in raster order.
    fn positions(&self, height: usize, width: usize) -> Vec<(usize, usize)> {
        let indices: Vec<usize> = match self {
            Membership::Range { map, lower, upper } => {
                // Salient clusters are small and compact, so most blocks of 64 pixels have no
                // member. The membership test over a block vectorises, and only blocks with a
                // member are scanned pixel by pixel.
                let is_member = |value: T| (value >= *lower) & (value <= *upper);
                let mut indices = Vec::new();
                for (block_index, block) in map.chunks(64).enumerate() {
                    let any_member = block
                        .iter()
                        .fold(false, |found, &value| found | is_member(value));
                    if !any_member {
                        continue;
                    }
                    for (offset, &value) in block.iter().enumerate() {
                        if is_member(value) {
                            indices.push(block_index * 64 + offset);
                        }
                    }
                }
                indices
            }
            // sample_pair handles Everywhere without a list; this arm is for completeness.
            Membership::Everywhere => (0..height * width).collect(),
        };
        indices
            .iter()
            .map(|&index| (index / width, index % width))
            .collect()
    }
}

/// Anchor candidates with their position list, built on first use and reused across sizes.
struct Candidates<'a, T> {
    membership: Membership<'a, T>,
    positions: Option<Vec<(usize, usize)>>,
}

impl<'a, T: MapElement> Candidates<'a, T> {
    fn new(membership: Membership<'a, T>) -> Self {
        Self {
            membership,
            positions: None,
        }
    }

    fn positions(&mut self, height: usize, width: usize) -> &[(usize, usize)] {
        let membership = &self.membership;
        self.positions
            .get_or_insert_with(|| membership.positions(height, width))
    }
}

/// Draws two non-overlapping `patch_height x patch_width` boxes whose top-left corners are
/// both candidates, uniformly over all such ordered pairs, or returns `None` when no pair
/// exists.
///
/// Three steps, each uniform over the valid pairs given that it succeeds: rejection on random
/// pixels (skipped once the candidate list exists, since building it means this failed
/// before), rejection on the candidate list, then the exact method.
fn sample_pair<T: MapElement>(
    rng: &mut SeededRng,
    height: usize,
    width: usize,
    patch_height: usize,
    patch_width: usize,
    candidates: &mut Candidates<'_, T>,
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
    let disjoint = |a: (usize, usize), b: (usize, usize)| {
        a.0.abs_diff(b.0) >= patch_height || a.1.abs_diff(b.1) >= patch_width
    };

    if candidates.positions.is_none() {
        let membership = &candidates.membership;
        let draw_anchor = |rng: &mut SeededRng| -> Option<(usize, usize)> {
            for _ in 0..MAX_ANCHOR_DRAWS {
                let y = rng.index(rows);
                let x = rng.index(columns);
                if membership.contains(y * width + x) {
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
            if disjoint(first, second) {
                return Some((make_box(first), make_box(second)));
            }
        }
    }

    if matches!(candidates.membership, Membership::Everywhere) {
        return sample_pair_everywhere(rng, rows, columns, patch_height, patch_width)
            .map(|(first, second)| (make_box(first), make_box(second)));
    }

    let anchors: Vec<(usize, usize)> = candidates
        .positions(height, width)
        .iter()
        .copied()
        .filter(|&(y, x)| y < rows && x < columns)
        .collect();
    if anchors.len() < 2 {
        return None;
    }

    // Two anchors closer than the patch in both directions always overlap, so a candidate
    // set narrower than the patch in both directions has no valid pair.
    let bounds = AnchorBounds::of(&anchors);
    if bounds.bottom - bounds.top < patch_height && bounds.right - bounds.left < patch_width {
        return None;
    }

    for _ in 0..MAX_PAIR_ATTEMPTS {
        let first = anchors[rng.index(anchors.len())];
        let second = anchors[rng.index(anchors.len())];
        if disjoint(first, second) {
            return Some((make_box(first), make_box(second)));
        }
    }

    sample_pair_exact(rng, &anchors, &bounds, patch_height, patch_width)
        .map(|(first, second)| (make_box(first), make_box(second)))
}

/// Returns how many `b` in `0..n` satisfy `|a - b| < distance`, for `a < n`, `distance >= 1`.
fn near_count(a: usize, n: usize, distance: usize) -> u128 {
    let low = a.saturating_sub(distance - 1);
    let high = (a + distance - 1).min(n - 1);
    (high - low + 1) as u128
}

/// Returns the number of ordered pairs in `0..n` closer than `distance` (`distance >= 1`).
fn near_pair_count(n: usize, distance: usize) -> u128 {
    let (n, d) = (n as u128, distance as u128);
    if d >= n {
        n * n
    } else {
        // Each value has 2d - 1 near partners, less those cut off at both ends.
        n * (2 * d - 1) - d * (d - 1)
    }
}

/// Draws an ordered pair from `0..n` that is near (`|a - b| < distance`) or far, uniformly
/// among such pairs. The caller guarantees at least one exists.
fn sample_pair_1d(rng: &mut SeededRng, n: usize, distance: usize, near: bool) -> (usize, usize) {
    let count_for = |a: usize| {
        let close = near_count(a, n, distance);
        if near {
            close
        } else {
            n as u128 - close
        }
    };
    let total = if near {
        near_pair_count(n, distance)
    } else {
        (n as u128) * (n as u128) - near_pair_count(n, distance)
    };

    let mut target = below_u128(rng, total);
    let mut first = 0;
    for a in 0..n {
        let count = count_for(a);
        if target < count {
            first = a;
            break;
        }
        target -= count;
    }

    let target = below_u128(rng, count_for(first)) as usize;
    let low = first.saturating_sub(distance - 1);
    if near {
        return (first, low + target);
    }
    // Far partners: 0..=first - distance, then first + distance..n.
    let below_count = if first >= distance {
        first - distance + 1
    } else {
        0
    };
    if target < below_count {
        (first, target)
    } else {
        (first, first + distance + (target - below_count))
    }
}

/// Returns an integer uniform in [0, n) for `n <= 2^128 - 1`, by masking to the next power of
/// two and rejecting values out of range.
fn below_u128(rng: &mut SeededRng, n: u128) -> u128 {
    if n <= u128::from(u64::MAX) {
        return u128::from(rng.below(n as u64));
    }
    let mask = u128::MAX >> (n - 1).leading_zeros();
    loop {
        let value = ((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())) & mask;
        if value < n {
            return value;
        }
    }
}

/// Draws two anchors from a `rows x columns` anchor grid whose patches do not overlap,
/// uniformly over all such ordered pairs, in O(rows + columns) time and no extra memory.
///
/// Disjoint pairs split into two sets without overlap: rows at least `patch_height` apart
/// (any columns), and rows closer but columns at least `patch_width` apart. Both are products
/// of 1-D pair sets, so their sizes have closed forms.
fn sample_pair_everywhere(
    rng: &mut SeededRng,
    rows: usize,
    columns: usize,
    patch_height: usize,
    patch_width: usize,
) -> Option<((usize, usize), (usize, usize))> {
    let near_rows = near_pair_count(rows, patch_height);
    let far_rows = (rows as u128) * (rows as u128) - near_rows;
    let near_columns = near_pair_count(columns, patch_width);
    let far_columns = (columns as u128) * (columns as u128) - near_columns;

    // MAX_PIXELS bounds rows * columns by 2^32, so these products fit in u128.
    let rows_apart = far_rows * (columns as u128) * (columns as u128);
    let columns_apart = near_rows * far_columns;
    let total = rows_apart + columns_apart;
    if total == 0 {
        return None;
    }

    if below_u128(rng, total) < rows_apart {
        let (y1, y2) = sample_pair_1d(rng, rows, patch_height, false);
        let (x1, x2) = (rng.index(columns), rng.index(columns));
        Some(((y1, x1), (y2, x2)))
    } else {
        let (y1, y2) = sample_pair_1d(rng, rows, patch_height, true);
        let (x1, x2) = sample_pair_1d(rng, columns, patch_width, false);
        Some(((y1, x1), (y2, x2)))
    }
}

/// The inclusive bounding box of a non-empty set of anchors.
struct AnchorBounds {
    top: usize,
    bottom: usize,
    left: usize,
    right: usize,
}

impl AnchorBounds {
    fn of(anchors: &[(usize, usize)]) -> Self {
        let mut bounds = AnchorBounds {
            top: usize::MAX,
            bottom: 0,
            left: usize::MAX,
            right: 0,
        };
        for &(y, x) in anchors {
            bounds.top = bounds.top.min(y);
            bounds.bottom = bounds.bottom.max(y);
            bounds.left = bounds.left.min(x);
            bounds.right = bounds.right.max(x);
        }
        bounds
    }
}

/// Draws the first anchor with probability proportional to its number of non-overlapping
/// partners, then the second uniformly among those partners (the exact step of
/// [`sample_pair`]).
///
/// Partner counts come from 2-D prefix sums over the anchors' bounding box, so the cost is
/// linear in that box's area plus the number of anchors.
fn sample_pair_exact(
    rng: &mut SeededRng,
    anchors: &[(usize, usize)],
    bounds: &AnchorBounds,
    patch_height: usize,
    patch_width: usize,
) -> Option<((usize, usize), (usize, usize))> {
    let grid_rows = bounds.bottom - bounds.top + 1;
    let grid_columns = bounds.right - bounds.left + 1;
    let stride = grid_columns + 1;

    // prefix[r * stride + c] counts anchors in grid rows < r and grid columns < c.
    let mut prefix = vec![0u64; (grid_rows + 1) * stride];
    for &(y, x) in anchors {
        prefix[(y - bounds.top + 1) * stride + (x - bounds.left + 1)] += 1;
    }
    for row in 1..=grid_rows {
        let mut row_count = 0;
        for column in 1..=grid_columns {
            row_count += prefix[row * stride + column];
            prefix[row * stride + column] = prefix[(row - 1) * stride + column] + row_count;
        }
    }
    let total = anchors.len() as u64;

    // Anchors whose patches overlap the patch at grid position (row, column) lie in this
    // half-open window of the grid.
    let window = |(y, x): (usize, usize)| {
        let (row, column) = (y - bounds.top, x - bounds.left);
        (
            row.saturating_sub(patch_height - 1),
            (row + patch_height).min(grid_rows),
            column.saturating_sub(patch_width - 1),
            (column + patch_width).min(grid_columns),
        )
    };
    let partners = |anchor: (usize, usize)| {
        let (top, bottom, left, right) = window(anchor);
        let inside = (prefix[bottom * stride + right] + prefix[top * stride + left])
            - (prefix[top * stride + right] + prefix[bottom * stride + left]);
        total - inside
    };

    let pair_count: u64 = anchors.iter().map(|&anchor| partners(anchor)).sum();
    if pair_count == 0 {
        return None;
    }

    let mut target = rng.below(pair_count);
    let mut first = anchors[0];
    let mut first_partners = 0;
    for &anchor in anchors {
        let count = partners(anchor);
        if target < count {
            first = anchor;
            first_partners = count;
            break;
        }
        target -= count;
    }

    let mut target = rng.below(first_partners);
    for &anchor in anchors {
        let overlapping =
            anchor.0.abs_diff(first.0) < patch_height && anchor.1.abs_diff(first.1) < patch_width;
        if overlapping {
            continue;
        }
        if target == 0 {
            return Some((first, anchor));
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
    let mut in_top = Candidates::new(Membership::Range {
        map,
        lower: clustering.lower[top],
        upper: clustering.upper[top],
    });
    for (attempt, &(h, w)) in limited_sizes.iter().enumerate() {
        if let Some(pair) = sample_pair(&mut rng, height, width, h, w, &mut in_top) {
            let fallback = (attempt > 0).then_some(Fallback::SmallerPatch);
            return Ok(params(pair, top, fallback));
        }
    }

    // The other clusters, from the highest centroid down.
    for cluster in (0..top).rev() {
        let mut in_cluster = Candidates::new(Membership::Range {
            map,
            lower: clustering.lower[cluster],
            upper: clustering.upper[cluster],
        });
        for &(h, w) in &limited_sizes {
            if let Some(pair) = sample_pair(&mut rng, height, width, h, w, &mut in_cluster) {
                return Ok(params(pair, cluster, Some(Fallback::NextCluster)));
            }
        }
    }

    // Anywhere: with at least 2 pixels, some size down to 1 x 1 always fits twice.
    let mut anywhere = Candidates::new(Membership::<T>::Everywhere);
    for &(h, w) in &all_sizes {
        if let Some((box_a, box_b)) = sample_pair(&mut rng, height, width, h, w, &mut anywhere) {
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
    let mut anywhere = Candidates::new(Membership::<u8>::Everywhere);
    for (attempt, &(h, w)) in halved_sizes(patch_height, patch_width, usize::BITS as usize)
        .iter()
        .enumerate()
    {
        if let Some((box_a, box_b)) = sample_pair(&mut rng, height, width, h, w, &mut anywhere) {
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
        // Anchors (0, 0), (0, 1), (0, 2) with 1 x 2 patches: only (0, 0) and (0, 2) are
        // disjoint. The exact step must produce that pair in both orders.
        let anchors = [(0, 0), (0, 1), (0, 2)];
        let bounds = AnchorBounds::of(&anchors);
        let mut rng = SeededRng::new(5);
        let mut seen = [0usize; 2];
        for _ in 0..200 {
            let (a, b) = sample_pair_exact(&mut rng, &anchors, &bounds, 1, 2).unwrap();
            assert!(
                (a.1 == 0 && b.1 == 2) || (a.1 == 2 && b.1 == 0),
                "{a:?} {b:?}"
            );
            seen[usize::from(a.1 == 2)] += 1;
        }
        assert!(seen[0] > 60, "{seen:?}");
        assert!(seen[1] > 60, "{seen:?}");
        assert!(sample_pair_exact(&mut rng, &anchors, &bounds, 1, 3).is_none());
    }

    #[test]
    fn everywhere_sampler_matches_brute_force() {
        let mut rng = SeededRng::new(21);
        for _ in 0..300 {
            let (rows, columns) = (1 + rng.index(7), 1 + rng.index(7));
            let (h, w) = (1 + rng.index(6), 1 + rng.index(6));
            let disjoint = |a: (usize, usize), b: (usize, usize)| {
                a.0.abs_diff(b.0) >= h || a.1.abs_diff(b.1) >= w
            };
            let mut pairs = 0u128;
            for a in 0..rows * columns {
                for b in 0..rows * columns {
                    pairs += u128::from(disjoint(
                        (a / columns, a % columns),
                        (b / columns, b % columns),
                    ));
                }
            }
            match sample_pair_everywhere(&mut rng, rows, columns, h, w) {
                Some((a, b)) => {
                    assert!(disjoint(a, b), "{a:?} {b:?} for {h} x {w}");
                    assert!(a.0 < rows, "{a:?}");
                    assert!(b.0 < rows, "{b:?}");
                    assert!(a.1 < columns, "{a:?}");
                    assert!(b.1 < columns, "{b:?}");
                    assert!(pairs > 0);
                }
                None => assert_eq!(pairs, 0),
            }
        }
    }

    #[test]
    fn everywhere_sampler_covers_all_pairs() {
        // A 3 x 1 anchor grid with 2 x 1 patches has the disjoint pairs (0, 2) and (2, 0).
        let mut rng = SeededRng::new(2);
        let mut seen = [0usize; 2];
        for _ in 0..200 {
            let (a, b) = sample_pair_everywhere(&mut rng, 3, 1, 2, 1).unwrap();
            assert_eq!(a.0.abs_diff(b.0), 2);
            seen[usize::from(a.0 == 2)] += 1;
        }
        assert!(seen[0] > 60, "{seen:?}");
        assert!(seen[1] > 60, "{seen:?}");
    }

    #[test]
    fn huge_shapes_rejected_without_allocation() {
        let sizes = PatchSizeRange {
            area: (0.9, 0.95),
            aspect: (1.0, 1.0),
        };
        let params = sample_random_swap(65_536, 65_536, &sizes, 0).unwrap();
        check_params(&params, 65_536, 65_536);
        assert!(matches!(
            sample_random_swap(1 << 20, 1 << 20, &sizes, 0),
            Err(Error::Shape {
                argument: "image",
                ..
            })
        ));
    }

    #[test]
    fn exact_step_counts_match_brute_force() {
        // Random anchor sets: the exact step must only return disjoint pairs, and must find
        // one whenever brute force does.
        let mut rng = SeededRng::new(11);
        for _ in 0..200 {
            let count = 2 + rng.index(12);
            let mut anchors: Vec<(usize, usize)> =
                (0..count).map(|_| (rng.index(9), rng.index(9))).collect();
            anchors.sort_unstable();
            anchors.dedup();
            let (h, w) = (1 + rng.index(5), 1 + rng.index(5));
            let disjoint = |a: (usize, usize), b: (usize, usize)| {
                a.0.abs_diff(b.0) >= h || a.1.abs_diff(b.1) >= w
            };
            let exists = anchors
                .iter()
                .any(|&a| anchors.iter().any(|&b| disjoint(a, b)));
            let bounds = AnchorBounds::of(&anchors);
            match sample_pair_exact(&mut rng, &anchors, &bounds, h, w) {
                Some((a, b)) => assert!(disjoint(a, b)),
                None => assert!(!exists),
            }
        }
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
