//! Parses arbitrary bytes as GGUF. When parsing succeeds, walks every metadata value
//! (array elements included) and every tensor, and checks that the lazy accessors agree
//! with what `Gguf::parse` validated.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mamba_core::gguf::{Gguf, Value};

/// Reads every accessor of `value`, and every element of an array, recursively.
fn walk_value(value: Value<'_>) {
    let _ = (value.as_u32(), value.as_u64(), value.as_i64(), value.as_f32());
    let _ = (value.as_bool(), value.as_str(), value.value_type());
    let Some(array) = value.as_array() else {
        return;
    };
    let mut count = 0u64;
    for element in array.iter() {
        assert_eq!(element.value_type(), array.elem_type());
        let by_index = array.get(count).expect("get() misses an element that iter() yields");
        assert_eq!(by_index.value_type(), element.value_type());
        walk_value(element);
        count += 1;
    }
    assert_eq!(count, array.len(), "iter() yields a different number of elements than len()");
    assert!(array.get(count).is_none());
}

fuzz_target!(|data: &[u8]| {
    let gguf = match Gguf::parse(data) {
        Ok(gguf) => gguf,
        Err(error) => {
            // Formatting must not panic either.
            let _ = error.to_string();
            return;
        }
    };
    assert_eq!(gguf.version(), 3);
    assert!(gguf.alignment().is_power_of_two());
    assert_eq!(gguf.data_offset() % gguf.alignment(), 0);

    let mut metadata_count = 0;
    for (key, value) in gguf.metadata() {
        walk_value(value);
        let found = gguf.get(key).expect("get() misses a key that metadata() yields");
        assert_eq!(found.value_type(), value.value_type());
        metadata_count += 1;
    }
    assert_eq!(metadata_count, gguf.metadata_count());

    let mut tensor_count = 0;
    for tensor in gguf.tensors() {
        let block_size = tensor.dtype.block_size() as u64;
        let expected_len = tensor.n_elements() / block_size * tensor.dtype.block_bytes() as u64;
        assert_eq!(tensor.data.len() as u64, expected_len, "tensor data has the wrong length");
        assert_eq!(tensor.offset % gguf.alignment(), 0);
        assert_eq!(tensor.shape().len(), tensor.n_dims as usize);
        if let Some(matrix) = tensor.matrix() {
            assert_eq!(matrix.data.len(), tensor.data.len());
        }
        let found = gguf.tensor(tensor.name).expect("tensor() misses a tensor that tensors() yields");
        assert_eq!(found.offset, tensor.offset);
        tensor_count += 1;
    }
    assert_eq!(tensor_count, gguf.tensor_count());
});
