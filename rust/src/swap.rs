//! Swapping the contents of two equal, non-overlapping boxes of an image.

use crate::error::{Error, Result};
use crate::sampling::PatchBox;

/// The layout of a row-major image buffer: `height x width x channels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    pub height: usize,
    pub width: usize,
    /// 1 for a 2-D image.
    pub channels: usize,
}

impl ImageShape {
    /// Returns the number of elements, or `None` on overflow.
    pub fn element_count(&self) -> Option<usize> {
        self.height
            .checked_mul(self.width)?
            .checked_mul(self.channels)
    }
}

fn describe(patch: &PatchBox) -> String {
    format!(
        "(y={}, x={}, h={}, w={})",
        patch.y, patch.x, patch.height, patch.width
    )
}

/// Checks that both boxes are non-empty, equal in size, inside the image and disjoint.
///
/// # Errors
/// [`Error::Value`] naming `box_a`, `box_b` or `boxes`.
pub fn validate_boxes(shape: ImageShape, box_a: &PatchBox, box_b: &PatchBox) -> Result<()> {
    for (argument, patch) in [("box_a", box_a), ("box_b", box_b)] {
        if !patch.fits(shape.height, shape.width) {
            return Err(Error::value(
                argument,
                format!(
                    "a non-empty box inside the {} x {} image",
                    shape.height, shape.width
                ),
                describe(patch),
            ));
        }
    }
    if (box_a.height, box_a.width) != (box_b.height, box_b.width) {
        return Err(Error::value(
            "box_b",
            format!("the size of box_a, {} x {}", box_a.height, box_a.width),
            format!("{} x {}", box_b.height, box_b.width),
        ));
    }
    if box_a.overlaps(box_b) {
        return Err(Error::value(
            "boxes",
            "non-overlapping boxes",
            format!("{} and {}", describe(box_a), describe(box_b)),
        ));
    }
    Ok(())
}

/// Swaps the contents of the two boxes of `image` in place, without validating them.
///
/// The caller guarantees the boxes passed [`validate_boxes`] for `shape`, which makes every
/// pair of swapped row segments disjoint.
pub(crate) fn swap_in_place<T: Copy>(
    image: &mut [T],
    shape: ImageShape,
    box_a: &PatchBox,
    box_b: &PatchBox,
) {
    let row_length = box_a.width * shape.channels;
    for row in 0..box_a.height {
        let start_a = ((box_a.y + row) * shape.width + box_a.x) * shape.channels;
        let start_b = ((box_b.y + row) * shape.width + box_b.x) * shape.channels;
        let (low, high) = if start_a < start_b {
            (start_a, start_b)
        } else {
            (start_b, start_a)
        };
        let (head, tail) = image.split_at_mut(high);
        head[low..low + row_length].swap_with_slice(&mut tail[..row_length]);
    }
}

/// Returns a copy of `image` with the contents of the two boxes exchanged.
///
/// # Errors
/// [`Error::Shape`] when `image` does not have `shape.element_count()` elements, and the errors of
/// [`validate_boxes`].
pub fn swap_patches<T: Copy>(
    image: &[T],
    shape: ImageShape,
    box_a: &PatchBox,
    box_b: &PatchBox,
) -> Result<Vec<T>> {
    check_image_len(image.len(), shape)?;
    validate_boxes(shape, box_a, box_b)?;
    let mut output = image.to_vec();
    swap_in_place(&mut output, shape, box_a, box_b);
    Ok(output)
}

pub(crate) fn check_image_len(len: usize, shape: ImageShape) -> Result<()> {
    if shape.element_count() != Some(len) {
        return Err(Error::shape(
            "image",
            format!(
                "{} x {} x {} elements",
                shape.height, shape.width, shape.channels
            ),
            format!("{len} elements"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(y: usize, x: usize, height: usize, width: usize) -> PatchBox {
        PatchBox {
            y,
            x,
            height,
            width,
        }
    }

    #[test]
    fn swaps_rgb_boxes() {
        let shape = ImageShape {
            height: 4,
            width: 5,
            channels: 3,
        };
        let image: Vec<u8> = (0..60).collect();
        let (a, b) = (patch(0, 0, 2, 2), patch(1, 3, 2, 2));
        let output = swap_patches(&image, shape, &a, &b).unwrap();
        for row in 0..2 {
            for column in 0..2 {
                for channel in 0..3 {
                    let index_a = ((a.y + row) * 5 + a.x + column) * 3 + channel;
                    let index_b = ((b.y + row) * 5 + b.x + column) * 3 + channel;
                    assert_eq!(output[index_a], image[index_b]);
                    assert_eq!(output[index_b], image[index_a]);
                }
            }
        }
        let twice = swap_patches(&output, shape, &a, &b).unwrap();
        assert_eq!(twice, image);
        let mut sorted_in = image.clone();
        let mut sorted_out = output.clone();
        sorted_in.sort_unstable();
        sorted_out.sort_unstable();
        assert_eq!(sorted_in, sorted_out);
    }

    #[test]
    fn swaps_side_by_side_boxes_in_same_rows() {
        let shape = ImageShape {
            height: 2,
            width: 4,
            channels: 1,
        };
        let image = vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let output = swap_patches(&image, shape, &patch(0, 2, 2, 2), &patch(0, 0, 2, 2)).unwrap();
        assert_eq!(output, vec![2.0, 3.0, 0.0, 1.0, 6.0, 7.0, 4.0, 5.0]);
    }

    #[test]
    fn rejects_invalid_boxes() {
        let shape = ImageShape {
            height: 4,
            width: 4,
            channels: 1,
        };
        let image = vec![0u8; 16];

        // (box_a, box_b, argument named in the error)
        let cases = [
            (patch(0, 0, 2, 2), patch(1, 1, 2, 2), "boxes"),
            (patch(3, 0, 2, 2), patch(0, 2, 2, 2), "box_a"),
            (patch(0, 0, 2, 2), patch(2, 2, 1, 2), "box_b"),
            (patch(0, 0, 0, 0), patch(2, 2, 0, 0), "box_a"),
        ];
        for (box_a, box_b, expected) in cases {
            let error = swap_patches(&image, shape, &box_a, &box_b).unwrap_err();
            assert!(
                matches!(error, Error::Value { argument, .. } if argument == expected),
                "{error}"
            );
        }

        let error =
            swap_patches(&image[..15], shape, &patch(0, 0, 1, 1), &patch(2, 2, 1, 1)).unwrap_err();
        assert!(
            matches!(
                error,
                Error::Shape {
                    argument: "image",
                    ..
                }
            ),
            "{error}"
        );
    }
}
