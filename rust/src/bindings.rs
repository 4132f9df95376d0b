//! The `cutswap._native` extension module: converts NumPy arrays into owned buffers, calls
//! the core with the GIL released, and maps each core error kind to a Python exception
//! (shape and value problems to `ValueError`, dtypes to `TypeError`).
//!
//! Arrays of any memory layout are accepted; non-contiguous ones are copied in logical
//! (C) order. Nothing here starts threads, so forked data-loader workers can use the module.

use numpy::ndarray::{Array, IxDyn};
use numpy::{
    dtype, Element, IntoPyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods,
    PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::error::Error;
use crate::kmeans::{kmeans_labels, MapElement};
use crate::levels::{cutswap_levels as core_cutswap_levels, SwapMode};
use crate::rng::derive_seed as core_derive_seed;
use crate::sampling::{
    sample_random_swap as core_sample_random_swap, sample_swap as core_sample_swap, PatchBox,
    PatchSizeRange, SwapParams,
};
use crate::swap::{swap_patches as core_swap_patches, ImageShape};

impl From<Error> for PyErr {
    fn from(error: Error) -> PyErr {
        match error {
            Error::Shape { .. } | Error::Value { .. } => PyValueError::new_err(error.to_string()),
            Error::Dtype { .. } => PyTypeError::new_err(error.to_string()),
        }
    }
}

/// `(y, x, height, width)` of a box.
type BoxTuple = (usize, usize, usize, usize);

/// `(box_a, box_b, centroid, cluster_size, fallback)`, turned into `SwapParams` in Python.
type ParamsTuple = (BoxTuple, BoxTuple, f32, u64, Option<&'static str>);

fn box_tuple(patch: &PatchBox) -> BoxTuple {
    (patch.y, patch.x, patch.height, patch.width)
}

fn params_tuple(params: &SwapParams) -> ParamsTuple {
    (
        box_tuple(&params.box_a),
        box_tuple(&params.box_b),
        params.centroid,
        params.cluster_size,
        params.fallback.map(|fallback| fallback.name()),
    )
}

fn format_shape(shape: &[usize]) -> String {
    match shape {
        [single] => format!("({single},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// An owned copy of a uint8 or float32 array with its shape.
enum OwnedArray {
    U8(Vec<u8>, Vec<usize>),
    F32(Vec<f32>, Vec<usize>),
}

impl OwnedArray {
    fn shape(&self) -> &[usize] {
        match self {
            OwnedArray::U8(_, shape) | OwnedArray::F32(_, shape) => shape,
        }
    }
}

fn copy_typed<T: Element + Copy>(
    array: &Bound<'_, PyUntypedArray>,
) -> PyResult<(Vec<T>, Vec<usize>)> {
    let typed = array.cast::<PyArrayDyn<T>>()?;
    let readonly: PyReadonlyArrayDyn<'_, T> = typed
        .try_readonly()
        .map_err(|error| PyValueError::new_err(format!("cannot read the array: {error}")))?;
    let values = match readonly.as_slice() {
        Ok(slice) => slice.to_vec(),
        Err(_) => readonly.as_array().iter().copied().collect(),
    };
    Ok((values, readonly.shape().to_vec()))
}

/// Copies a uint8 or float32 ndarray with `ndims` dimensions (any of them) into owned memory.
fn copy_array(
    argument: &'static str,
    object: &Bound<'_, PyAny>,
    ndims: &[usize],
) -> PyResult<OwnedArray> {
    let py = object.py();
    let array = object.cast::<PyUntypedArray>().map_err(|_| {
        let type_name = object
            .get_type()
            .name()
            .map(|name| name.to_string())
            .unwrap_or_else(|_| "an unknown type".to_owned());
        PyTypeError::new_err(format!(
            "invalid type for {argument}: expected numpy.ndarray, got {type_name}"
        ))
    })?;

    if !ndims.contains(&array.ndim()) {
        let expected = ndims
            .iter()
            .map(|n| format!("{n}-D"))
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(Error::shape(
            argument,
            expected,
            format!("shape {}", format_shape(array.shape())),
        )
        .into());
    }

    let element_type = array.dtype();
    if element_type.is_equiv_to(&dtype::<u8>(py)) {
        let (values, shape) = copy_typed::<u8>(array)?;
        Ok(OwnedArray::U8(values, shape))
    } else if element_type.is_equiv_to(&dtype::<f32>(py)) {
        let (values, shape) = copy_typed::<f32>(array)?;
        Ok(OwnedArray::F32(values, shape))
    } else {
        Err(Error::dtype(argument, "uint8 or float32", element_type.to_string()).into())
    }
}

fn check_k(k: i64) -> Result<usize, Error> {
    usize::try_from(k)
        .ok()
        .filter(|&k| (1..=crate::kmeans::MAX_CLUSTERS).contains(&k))
        .ok_or_else(|| {
            Error::value(
                "k",
                format!("an integer in [1, {}]", crate::kmeans::MAX_CLUSTERS),
                k.to_string(),
            )
        })
}

fn image_shape(shape: &[usize]) -> ImageShape {
    ImageShape {
        height: shape[0],
        width: shape[1],
        channels: shape.get(2).copied().unwrap_or(1),
    }
}

fn to_pyarray<'py, T: Element>(
    py: Python<'py>,
    values: Vec<T>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    let array = Array::from_shape_vec(IxDyn(shape), values)
        .map_err(|error| PyValueError::new_err(format!("internal shape mismatch: {error}")))?;
    Ok(array.into_pyarray(py).into_any())
}

/// Clusters the values of a (H, W) uint8 or float32 map; returns (centroids, labels).
#[pyfunction]
fn kmeans_1d<'py>(
    py: Python<'py>,
    saliency: &Bound<'py, PyAny>,
    k: i64,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let map = copy_array("saliency", saliency, &[2])?;
    let k = check_k(k)?;
    let shape = map.shape().to_vec();

    fn run<T: MapElement>(map: &[T], k: usize) -> Result<(Vec<f32>, Vec<u8>), Error> {
        let (clustering, labels) = kmeans_labels(map, k)?;
        Ok((clustering.centroids, labels))
    }
    let (centroids, labels) = match map {
        OwnedArray::U8(values, _) => py.detach(move || run(&values, k))?,
        OwnedArray::F32(values, _) => py.detach(move || run(&values, k))?,
    };
    let count = centroids.len();
    Ok((
        to_pyarray(py, centroids, &[count])?,
        to_pyarray(py, labels, &shape)?,
    ))
}

/// Samples saliency-guided swap boxes from a (H, W) uint8 or float32 map.
#[pyfunction]
fn sample_swap(
    py: Python<'_>,
    saliency: &Bound<'_, PyAny>,
    k: i64,
    area: (f64, f64),
    aspect: (f64, f64),
    seed: u64,
) -> PyResult<ParamsTuple> {
    let map = copy_array("saliency", saliency, &[2])?;
    let k = check_k(k)?;
    let sizes = PatchSizeRange { area, aspect };
    let (height, width) = (map.shape()[0], map.shape()[1]);
    let params = match map {
        OwnedArray::U8(values, _) => {
            py.detach(move || core_sample_swap(&values, height, width, k, &sizes, seed))?
        }
        OwnedArray::F32(values, _) => {
            py.detach(move || core_sample_swap(&values, height, width, k, &sizes, seed))?
        }
    };
    Ok(params_tuple(&params))
}

/// Samples swap boxes with anchors uniform over a height x width image.
#[pyfunction]
fn sample_random_swap(
    height: usize,
    width: usize,
    area: (f64, f64),
    aspect: (f64, f64),
    seed: u64,
) -> PyResult<ParamsTuple> {
    let params = core_sample_random_swap(height, width, &PatchSizeRange { area, aspect }, seed)?;
    Ok(params_tuple(&params))
}

fn to_patch_box((y, x, height, width): BoxTuple) -> PatchBox {
    PatchBox {
        y,
        x,
        height,
        width,
    }
}

/// Returns a copy of a (H, W) or (H, W, C) uint8 or float32 image with two boxes swapped.
#[pyfunction]
fn swap_patches<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    box_a: BoxTuple,
    box_b: BoxTuple,
) -> PyResult<Bound<'py, PyAny>> {
    let image = copy_array("image", image, &[2, 3])?;
    let shape = image.shape().to_vec();
    let layout = image_shape(&shape);
    let (box_a, box_b) = (to_patch_box(box_a), to_patch_box(box_b));
    match image {
        OwnedArray::U8(values, _) => {
            let output = py.detach(move || core_swap_patches(&values, layout, &box_a, &box_b))?;
            to_pyarray(py, output, &shape)
        }
        OwnedArray::F32(values, _) => {
            let output = py.detach(move || core_swap_patches(&values, layout, &box_a, &box_b))?;
            to_pyarray(py, output, &shape)
        }
    }
}

/// Builds one negative per level from a (H, W[, C]) image and (L, H, W) maps.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn cutswap_levels<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    maps: &Bound<'py, PyAny>,
    k: i64,
    area: (f64, f64),
    aspect: (f64, f64),
    seed: u64,
    mode: &str,
) -> PyResult<(Bound<'py, PyAny>, Vec<ParamsTuple>)> {
    let mode = match mode {
        "saliency" => SwapMode::Saliency,
        "random" => SwapMode::Random,
        other => {
            return Err(
                Error::value("mode", "'saliency' or 'random'", format!("'{other}'")).into(),
            );
        }
    };
    let image = copy_array("image", image, &[2, 3])?;
    let maps = copy_array("maps", maps, &[3])?;
    let k = check_k(k)?;

    let image_dims = image.shape().to_vec();
    let map_dims = maps.shape().to_vec();
    if map_dims[1..] != image_dims[..2] {
        return Err(Error::shape(
            "maps",
            format!(
                "(L, {}, {}) to match the image",
                image_dims[0], image_dims[1]
            ),
            format_shape(&map_dims),
        )
        .into());
    }
    let levels = map_dims[0];
    let layout = image_shape(&image_dims);
    let sizes = PatchSizeRange { area, aspect };
    let mut output_dims = vec![levels];
    output_dims.extend_from_slice(&image_dims);

    macro_rules! run {
        ($image:expr, $maps:expr) => {{
            let (image, maps) = ($image, $maps);
            let negatives = py.detach(move || {
                core_cutswap_levels(&image, layout, &maps, levels, k, &sizes, seed, mode)
            })?;
            let params = negatives.params.iter().map(params_tuple).collect();
            (to_pyarray(py, negatives.images, &output_dims)?, params)
        }};
    }
    let result = match (image, maps) {
        (OwnedArray::U8(image, _), OwnedArray::U8(maps, _)) => run!(image, maps),
        (OwnedArray::U8(image, _), OwnedArray::F32(maps, _)) => run!(image, maps),
        (OwnedArray::F32(image, _), OwnedArray::U8(maps, _)) => run!(image, maps),
        (OwnedArray::F32(image, _), OwnedArray::F32(maps, _)) => run!(image, maps),
    };
    Ok(result)
}

/// Mixes a base seed and indices into a new 64-bit seed (see `rng::derive_seed`).
#[pyfunction]
fn derive_seed(base_seed: u64, indices: Vec<u64>) -> u64 {
    core_derive_seed(base_seed, &indices)
}

/// The native core of cutswap.
#[pymodule]
#[pyo3(name = "_native")]
fn native_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("MAX_CLUSTERS", crate::kmeans::MAX_CLUSTERS)?;
    module.add_function(wrap_pyfunction!(kmeans_1d, module)?)?;
    module.add_function(wrap_pyfunction!(sample_swap, module)?)?;
    module.add_function(wrap_pyfunction!(sample_random_swap, module)?)?;
    module.add_function(wrap_pyfunction!(swap_patches, module)?)?;
    module.add_function(wrap_pyfunction!(cutswap_levels, module)?)?;
    module.add_function(wrap_pyfunction!(derive_seed, module)?)?;
    Ok(())
}
