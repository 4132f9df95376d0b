//! Optimal 1-D k-means on the pixel values of a saliency map.
//!
//! In one dimension every optimal cluster is a contiguous run of the sorted values, so the
//! problem is a segmentation solved exactly by dynamic programming over the sorted distinct
//! values, each weighted by its pixel count. Row `c` of the table holds, for every prefix of
//! the values, the minimum within-cluster sum of squares (WCSS) using `c` clusters. The
//! squared-deviation cost satisfies the quadrangle inequality, so the optimal split point is
//! monotone in the prefix length, and each row is filled by divide and conquer in
//! O(n log n) cost evaluations instead of O(n^2).
//!
//! uint8 maps collapse to a 256-bin histogram first; float32 maps sort their values.
//!
//! When the map has fewer distinct values than `k`, every distinct value becomes its own
//! cluster and the result has that smaller number of clusters. Every returned cluster is
//! therefore non-empty, and a constant map (all zeros included) yields one cluster.

use crate::error::{Error, Result};

/// The largest supported number of clusters; labels are stored as `u8`.
pub const MAX_CLUSTERS: usize = 256;

/// A pixel type a saliency map can have: `u8` or `f32`.
pub trait MapElement: Copy + PartialOrd + Send + Sync + 'static {
    /// Returns the sorted distinct values of `map` and the pixel count of each.
    ///
    /// # Errors
    /// [`Error::Value`] when a value is NaN or infinite.
    fn distinct_counts(map: &[Self]) -> Result<(Vec<Self>, Vec<u64>)>;

    /// Converts the value to `f64` exactly.
    fn to_f64(self) -> f64;

    /// Returns the cluster index of every pixel; the default searches the cluster bounds.
    fn label_map(map: &[Self], clustering: &Clustering<Self>) -> Vec<u8> {
        map.iter().map(|&value| clustering.label(value)).collect()
    }
}

impl MapElement for u8 {
    fn distinct_counts(map: &[u8]) -> Result<(Vec<u8>, Vec<u64>)> {
        // Four interleaved u32 histograms break the store-to-load dependency between
        // neighbouring pixels with the same value, the common case in saliency maps. Blocks
        // of 2^30 pixels keep the u32 counts from overflowing before they move into u64.
        let mut totals = [0u64; 256];
        for block in map.chunks(1 << 30) {
            let mut histograms = [[0u32; 256]; 4];
            let mut chunks = block.chunks_exact(4);
            for chunk in &mut chunks {
                histograms[0][usize::from(chunk[0])] += 1;
                histograms[1][usize::from(chunk[1])] += 1;
                histograms[2][usize::from(chunk[2])] += 1;
                histograms[3][usize::from(chunk[3])] += 1;
            }
            for &value in chunks.remainder() {
                histograms[0][usize::from(value)] += 1;
            }
            for (bin, total) in totals.iter_mut().enumerate() {
                *total += histograms
                    .iter()
                    .map(|histogram| u64::from(histogram[bin]))
                    .sum::<u64>();
            }
        }

        let mut values = Vec::new();
        let mut counts = Vec::new();
        for value in 0..=255u8 {
            let count = totals[usize::from(value)];
            if count > 0 {
                values.push(value);
                counts.push(count);
            }
        }
        Ok((values, counts))
    }

    fn to_f64(self) -> f64 {
        f64::from(self)
    }

    fn label_map(map: &[u8], clustering: &Clustering<u8>) -> Vec<u8> {
        let mut lookup = [0u8; 256];
        for (value, label) in lookup.iter_mut().enumerate() {
            // value < 256, so the cast is lossless.
            *label = clustering.label(value as u8);
        }
        map.iter()
            .map(|&value| lookup[usize::from(value)])
            .collect()
    }
}

/// Maps an `f32` to a `u32` whose unsigned order is the numeric order of finite floats.
fn order_key(value: f32) -> u32 {
    let bits = value.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

fn from_order_key(key: u32) -> f32 {
    if key >> 31 == 1 {
        f32::from_bits(key & 0x7fff_ffff)
    } else {
        f32::from_bits(!key)
    }
}

/// Sorts `keys` ascending with a least-significant-digit radix sort on bytes, which is
/// several times faster than a comparison sort on the 10^4-10^6 keys of a saliency map.
fn radix_sort(keys: &mut Vec<u32>) {
    let mut buffer = vec![0u32; keys.len()];
    for shift in [0u32, 8, 16, 24] {
        let mut counts = [0usize; 256];
        for &key in keys.iter() {
            counts[((key >> shift) & 0xff) as usize] += 1;
        }
        // A pass where every key has the same digit would not change the order.
        if counts.contains(&keys.len()) {
            continue;
        }

        let mut offsets = [0usize; 256];
        let mut total = 0;
        for (offset, count) in offsets.iter_mut().zip(counts) {
            *offset = total;
            total += count;
        }
        for &key in keys.iter() {
            let digit = ((key >> shift) & 0xff) as usize;
            buffer[offsets[digit]] = key;
            offsets[digit] += 1;
        }
        std::mem::swap(keys, &mut buffer);
    }
}

impl MapElement for f32 {
    fn distinct_counts(map: &[f32]) -> Result<(Vec<f32>, Vec<u64>)> {
        if let Some(index) = map.iter().position(|value| !value.is_finite()) {
            return Err(Error::value(
                "saliency",
                "finite values",
                format!("{} at flat index {index}", map[index]),
            ));
        }

        // Adding 0.0 turns -0.0 into 0.0, so the two zeros count as one value.
        let mut keys: Vec<u32> = map.iter().map(|&value| order_key(value + 0.0)).collect();
        radix_sort(&mut keys);

        let mut values = Vec::new();
        let mut counts: Vec<u64> = Vec::new();
        let mut previous = None;
        for key in keys {
            if previous == Some(key) {
                if let Some(last) = counts.last_mut() {
                    *last += 1;
                }
            } else {
                values.push(from_order_key(key));
                counts.push(1);
                previous = Some(key);
            }
        }
        Ok((values, counts))
    }

    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

/// The result of 1-D k-means: clusters ordered by ascending centroid.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering<T> {
    /// Cluster means, ascending.
    pub centroids: Vec<f32>,
    /// The smallest pixel value in each cluster.
    pub lower: Vec<T>,
    /// The largest pixel value in each cluster.
    pub upper: Vec<T>,
    /// The number of pixels in each cluster; every entry is positive.
    pub sizes: Vec<u64>,
    /// The mean of the whole map.
    pub mean: f32,
    /// The within-cluster sum of squares of the whole clustering, in squared map units.
    pub wcss: f64,
}

impl<T: MapElement> Clustering<T> {
    /// Returns the number of clusters, `min(k, number of distinct values)`.
    pub fn len(&self) -> usize {
        self.centroids.len()
    }

    /// Returns true when there are no clusters, which `kmeans_1d` never produces.
    pub fn is_empty(&self) -> bool {
        self.centroids.is_empty()
    }

    /// Returns true when `value` lies in the value range of `cluster`.
    pub fn contains(&self, cluster: usize, value: T) -> bool {
        value >= self.lower[cluster] && value <= self.upper[cluster]
    }

    /// Returns the cluster index of `value`, which must come from the clustered map.
    pub fn label(&self, value: T) -> u8 {
        let index = self.upper.partition_point(|&upper| upper < value);
        // At most 256 clusters, so the last index fits a u8; values above every cluster
        // (not from the map) go to the last cluster.
        index.min(self.len().saturating_sub(1)) as u8
    }
}

/// Prefix sums of weights and of weighted (shifted) values and squares.
struct PrefixSums {
    weight: Vec<f64>,
    first: Vec<f64>,
    second: Vec<f64>,
}

impl PrefixSums {
    fn new(values: &[f64], weights: &[f64]) -> Self {
        // Shifting by the weighted mean keeps the sums small, which limits cancellation in
        // `second - first^2 / weight`.
        let total: f64 = weights.iter().sum();
        let shift = values.iter().zip(weights).map(|(x, w)| x * w).sum::<f64>() / total;

        let n = values.len();
        let mut weight = Vec::with_capacity(n + 1);
        let mut first = Vec::with_capacity(n + 1);
        let mut second = Vec::with_capacity(n + 1);
        weight.push(0.0);
        first.push(0.0);
        second.push(0.0);
        for (x, w) in values.iter().zip(weights) {
            let d = x - shift;
            weight.push(weight[weight.len() - 1] + w);
            first.push(first[first.len() - 1] + w * d);
            second.push(second[second.len() - 1] + w * d * d);
        }
        Self {
            weight,
            first,
            second,
        }
    }

    /// Returns the sum of squared deviations of points `start..end` from their mean.
    fn cost(&self, start: usize, end: usize) -> f64 {
        let weight = self.weight[end] - self.weight[start];
        let first = self.first[end] - self.first[start];
        let second = self.second[end] - self.second[start];
        (second - first * first / weight).max(0.0)
    }
}

/// Fills `current[i]` for `i` in `low..=high` with the best split of a layer, knowing the
/// best split point of every `i` in that range lies in `split_low..=split_high`.
#[allow(clippy::too_many_arguments)]
fn fill_layer(
    sums: &PrefixSums,
    previous: &[f64],
    current: &mut [f64],
    splits: &mut [u32],
    low: usize,
    high: usize,
    split_low: usize,
    split_high: usize,
) {
    if low > high {
        return;
    }
    let mid = low + (high - low) / 2;
    let mut best_cost = f64::INFINITY;
    let mut best_split = split_low;
    let last_split = split_high.min(mid - 1);
    for (split, &prefix_cost) in previous
        .iter()
        .enumerate()
        .take(last_split + 1)
        .skip(split_low)
    {
        let cost = prefix_cost + sums.cost(split, mid);
        if cost < best_cost {
            best_cost = cost;
            best_split = split;
        }
    }
    current[mid] = best_cost;
    // Point counts are bounded by the pixel count of one map, far below u32::MAX in practice.
    splits[mid] = best_split as u32;

    if mid > low {
        fill_layer(
            sums,
            previous,
            current,
            splits,
            low,
            mid - 1,
            split_low,
            best_split,
        );
    }
    fill_layer(
        sums,
        previous,
        current,
        splits,
        mid + 1,
        high,
        best_split,
        split_high,
    );
}

/// Returns the exclusive end index of each of `clusters` segments of `values` (sorted,
/// distinct) that minimise the weighted WCSS. Requires `1 <= clusters <= values.len()`.
fn optimal_segment_ends(values: &[f64], weights: &[f64], clusters: usize) -> Vec<usize> {
    let n = values.len();
    if clusters == 1 {
        return vec![n];
    }
    if clusters == n {
        return (1..=n).collect();
    }
    let sums = PrefixSums::new(values, weights);

    // previous[i]: minimum WCSS of the first i points in (layer) clusters.
    let mut previous: Vec<f64> = (0..=n)
        .map(|i| {
            if i == 0 {
                f64::INFINITY
            } else {
                sums.cost(0, i)
            }
        })
        .collect();
    let mut current = vec![f64::INFINITY; n + 1];
    // NOTE: the split table takes 4 * clusters * n bytes, so float maps with millions of
    // distinct values and k near 256 need gigabytes.
    let mut split_table: Vec<Vec<u32>> = Vec::with_capacity(clusters - 1);

    for layer in 2..clusters {
        // With `layer` clusters the prefix needs at least `layer` points, and it must leave
        // one point for each of the remaining `clusters - layer` clusters.
        let low = layer;
        let high = n - (clusters - layer);
        let mut splits = vec![0u32; n + 1];
        current.iter_mut().for_each(|cost| *cost = f64::INFINITY);
        fill_layer(
            &sums,
            &previous,
            &mut current,
            &mut splits,
            low,
            high,
            layer - 1,
            high - 1,
        );
        split_table.push(splits);
        std::mem::swap(&mut previous, &mut current);
    }

    // The last layer needs only the full prefix.
    let mut best_cost = f64::INFINITY;
    let mut best_split = clusters - 1;
    for (split, &prefix_cost) in previous.iter().enumerate().take(n).skip(clusters - 1) {
        let cost = prefix_cost + sums.cost(split, n);
        if cost < best_cost {
            best_cost = cost;
            best_split = split;
        }
    }

    let mut ends = vec![0usize; clusters];
    ends[clusters - 1] = n;
    ends[clusters - 2] = best_split;
    for layer in (2..clusters).rev() {
        // split_table[layer - 2] contains the splits for `layer` clusters.
        ends[layer - 2] = split_table[layer - 2][ends[layer - 1]] as usize;
    }
    ends
}

/// Clusters the pixel values of `map` into at most `k` clusters with minimum WCSS.
///
/// The result has `min(k, number of distinct values)` non-empty clusters sorted by centroid.
/// Ties between equally good clusterings are broken the same way on every run.
///
/// # Errors
/// [`Error::Value`] when `k` is outside `1..=256`, the map is empty, or a float value is not
/// finite.
pub fn kmeans_1d<T: MapElement>(map: &[T], k: usize) -> Result<Clustering<T>> {
    if !(1..=MAX_CLUSTERS).contains(&k) {
        return Err(Error::value(
            "k",
            format!("an integer in [1, {MAX_CLUSTERS}]"),
            k.to_string(),
        ));
    }
    if map.is_empty() {
        return Err(Error::value(
            "saliency",
            "at least one pixel",
            "an empty map",
        ));
    }

    let (distinct, counts) = T::distinct_counts(map)?;
    let values: Vec<f64> = distinct.iter().map(|value| value.to_f64()).collect();
    let weights: Vec<f64> = counts.iter().map(|&count| count as f64).collect();
    let clusters = k.min(values.len());
    let ends = optimal_segment_ends(&values, &weights, clusters);

    let mut clustering = Clustering {
        centroids: Vec::with_capacity(clusters),
        lower: Vec::with_capacity(clusters),
        upper: Vec::with_capacity(clusters),
        sizes: Vec::with_capacity(clusters),
        mean: 0.0,
        wcss: 0.0,
    };
    let mut start = 0;
    let mut total_sum = 0.0;
    let mut total_weight = 0.0;
    for &end in &ends {
        let weight: f64 = weights[start..end].iter().sum();
        let sum: f64 = values[start..end]
            .iter()
            .zip(&weights[start..end])
            .map(|(x, w)| x * w)
            .sum();
        let centroid = sum / weight;
        let wcss: f64 = values[start..end]
            .iter()
            .zip(&weights[start..end])
            .map(|(x, w)| w * (x - centroid) * (x - centroid))
            .sum();

        clustering.centroids.push(centroid as f32);
        clustering.lower.push(distinct[start]);
        clustering.upper.push(distinct[end - 1]);
        clustering.sizes.push(counts[start..end].iter().sum());
        clustering.wcss += wcss;
        total_sum += sum;
        total_weight += weight;
        start = end;
    }
    clustering.mean = (total_sum / total_weight) as f32;
    Ok(clustering)
}

/// Clusters `map` and returns the clustering together with the cluster index of each pixel.
///
/// # Errors
/// As [`kmeans_1d`].
pub fn kmeans_labels<T: MapElement>(map: &[T], k: usize) -> Result<(Clustering<T>, Vec<u8>)> {
    let clustering = kmeans_1d(map, k)?;
    let labels = T::label_map(map, &clustering);
    Ok((clustering, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exhaustive minimum WCSS over all contiguous segmentations, for tiny inputs.
    fn brute_force_wcss(values: &[f64], weights: &[f64], clusters: usize) -> f64 {
        fn cost(values: &[f64], weights: &[f64]) -> f64 {
            let w: f64 = weights.iter().sum();
            let mean = values.iter().zip(weights).map(|(x, w)| x * w).sum::<f64>() / w;
            values
                .iter()
                .zip(weights)
                .map(|(x, w)| w * (x - mean) * (x - mean))
                .sum()
        }
        fn best(values: &[f64], weights: &[f64], clusters: usize) -> f64 {
            if clusters == 1 {
                return cost(values, weights);
            }
            (1..=values.len() - (clusters - 1))
                .map(|cut| {
                    cost(&values[..cut], &weights[..cut])
                        + best(&values[cut..], &weights[cut..], clusters - 1)
                })
                .fold(f64::INFINITY, f64::min)
        }
        best(values, weights, clusters)
    }

    fn lcg_values(seed: u64, len: usize, levels: u64) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 33) % levels) as u8
            })
            .collect()
    }

    #[test]
    fn matches_brute_force_on_small_maps() {
        for seed in 0..40 {
            let map: Vec<u8> = lcg_values(seed, 60, 12)
                .into_iter()
                .map(|v| v * 20)
                .collect();
            let (distinct, counts) = u8::distinct_counts(&map).unwrap();
            let values: Vec<f64> = distinct.iter().map(|&v| f64::from(v)).collect();
            let weights: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
            for k in 1..=6 {
                let clustering = kmeans_1d(&map, k).unwrap();
                let expected = brute_force_wcss(&values, &weights, k.min(values.len()));
                assert!(
                    (clustering.wcss - expected).abs() <= 1e-9 * expected.max(1.0),
                    "seed {seed}, k {k}: {} vs {expected}",
                    clustering.wcss
                );
            }
        }
    }

    #[test]
    fn float_and_uint8_agree_on_same_values() {
        let map: Vec<u8> = lcg_values(3, 500, 200);
        let floats: Vec<f32> = map.iter().map(|&v| f32::from(v)).collect();
        let a = kmeans_1d(&map, 4).unwrap();
        let b = kmeans_1d(&floats, 4).unwrap();
        assert_eq!(a.centroids, b.centroids);
        assert_eq!(a.sizes, b.sizes);
    }

    #[test]
    fn constant_map_gives_one_cluster() {
        let map = vec![0u8; 100];
        let (clustering, labels) = kmeans_labels(&map, 3).unwrap();
        assert_eq!(clustering.centroids, vec![0.0]);
        assert_eq!(clustering.sizes, vec![100]);
        assert!(labels.iter().all(|&label| label == 0));
    }

    #[test]
    fn fewer_distinct_values_than_k() {
        let map = vec![0.25f32, 0.75, 0.25, 0.75, 0.75];
        let (clustering, labels) = kmeans_labels(&map, 5).unwrap();
        assert_eq!(clustering.centroids, vec![0.25, 0.75]);
        assert_eq!(clustering.sizes, vec![2, 3]);
        assert_eq!(labels, vec![0, 1, 0, 1, 1]);
    }

    #[test]
    fn centroids_ascend_and_labels_are_consistent() {
        let map: Vec<u8> = lcg_values(11, 4096, 256);
        let (clustering, labels) = kmeans_labels(&map, 5).unwrap();
        assert_eq!(clustering.len(), 5);
        assert!(clustering
            .centroids
            .windows(2)
            .all(|pair| pair[0] < pair[1]));
        for (&value, &label) in map.iter().zip(&labels) {
            assert!(clustering.contains(usize::from(label), value));
        }
        let total: u64 = clustering.sizes.iter().sum();
        assert_eq!(total, 4096);
    }

    #[test]
    fn negative_zero_merges_with_zero() {
        let map = vec![-0.0f32, 0.0, 1.0];
        let clustering = kmeans_1d(&map, 3).unwrap();
        assert_eq!(clustering.sizes, vec![2, 1]);
    }

    #[test]
    fn rejects_bad_k_and_values() {
        assert!(matches!(
            kmeans_1d(&[1u8, 2], 0),
            Err(Error::Value { argument: "k", .. })
        ));
        assert!(matches!(
            kmeans_1d(&[1u8, 2], 257),
            Err(Error::Value { argument: "k", .. })
        ));
        assert!(matches!(
            kmeans_1d::<u8>(&[], 2),
            Err(Error::Value {
                argument: "saliency",
                ..
            })
        ));
        let error = kmeans_1d(&[0.5f32, f32::NAN], 2).unwrap_err();
        assert!(error.to_string().contains("NaN at flat index 1"), "{error}");
        assert!(kmeans_1d(&[0.5f32, f32::INFINITY], 2).is_err());
    }

    #[test]
    fn radix_sort_matches_std_sort() {
        let mut state = 99u64;
        let mut keys: Vec<u32> = (0..5000)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 32) as u32
            })
            .collect();
        keys.extend([0, u32::MAX, 7, 7, 7]);
        let mut expected = keys.clone();
        expected.sort_unstable();
        radix_sort(&mut keys);
        assert_eq!(keys, expected);
        let mut same = vec![5u32; 10];
        radix_sort(&mut same);
        assert_eq!(same, vec![5u32; 10]);
    }

    #[test]
    fn order_key_round_trips_and_orders() {
        let values = [-3.5f32, -1e-30, 0.0, 1e-30, 0.5, 2.0];
        for pair in values.windows(2) {
            assert!(order_key(pair[0]) < order_key(pair[1]));
        }
        for &value in &values {
            assert_eq!(from_order_key(order_key(value)), value);
        }
    }
}
