//! Choice of the ggml type of each output tensor.

use mamba_core::GgmlType;

use crate::names::Role;

/// Largest finite f16 magnitude. Values beyond it would become infinity.
pub const F16_MAX: f32 = 65504.0;

/// llama.cpp's `LLAMA_FTYPE` number for a file whose matrices use `target`
/// (`gguf.LlamaFileType` in gguf-py 0.19: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2,
/// MOSTLY_Q8_0 7, MOSTLY_BF16 32).
pub fn file_type(target: GgmlType) -> u32 {
    match target {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q4_0 => 2,
        GgmlType::Q8_0 => 7,
        GgmlType::BF16 => 32,
    }
}

/// The type chosen for one tensor before its values are looked at.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeChoice {
    /// The type to write, unless the values rule out F16 (see [`F16_MAX`]).
    pub dtype: GgmlType,
    /// The reason `dtype` differs from the requested type for a matrix, if it does.
    pub fallback: Option<String>,
}

/// Chooses the output type of a tensor with role `role` and GGUF row length `row_len`
/// (`dims[0]`) when the user requested `target`.
///
/// Matrices get `target`. When `row_len` is not a whole number of `target` blocks, they fall
/// back to F16, as llama.cpp's converter does for `--outtype q8_0` (it catches the
/// `QuantError` of gguf-py and retries with F16). With Mamba-130M that affects `ssm_dt.weight`,
/// whose rows hold `dt_rank` = 48 values. Everything else stays F32.
pub fn choose_type(role: Role, row_len: u64, target: GgmlType) -> TypeChoice {
    if !role.takes_requested_type() {
        return TypeChoice {
            dtype: GgmlType::F32,
            fallback: None,
        };
    }
    let block = target.block_size() as u64;
    if row_len.is_multiple_of(block) {
        return TypeChoice {
            dtype: target,
            fallback: None,
        };
    }
    TypeChoice {
        dtype: GgmlType::F16,
        fallback: Some(format!(
            "row length {row_len} is not a multiple of the {target} block size {block}, so it is stored as f16"
        )),
    }
}

/// Returns the largest finite |x| in `values`, or 0 when there is none.
pub fn max_abs(values: &[f32]) -> f32 {
    values
        .iter()
        .filter(|x| x.is_finite())
        .fold(0.0_f32, |max, x| max.max(x.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_types_match_llama_cpp() {
        assert_eq!(file_type(GgmlType::F32), 0);
        assert_eq!(file_type(GgmlType::F16), 1);
        assert_eq!(file_type(GgmlType::Q4_0), 2);
        assert_eq!(file_type(GgmlType::Q8_0), 7);
        assert_eq!(file_type(GgmlType::BF16), 32);
    }

    #[test]
    fn matrices_take_target() {
        for target in GgmlType::ALL {
            let choice = choose_type(Role::SsmIn, 768, target);
            assert_eq!(choice.dtype, target);
            assert_eq!(choice.fallback, None);
        }
    }

    #[test]
    fn vectors_and_conv_stay_f32() {
        for role in [
            Role::AttnNorm,
            Role::OutputNorm,
            Role::SsmConv1dWeight,
            Role::SsmConv1dBias,
            Role::SsmA,
            Role::SsmD,
            Role::SsmDtBias,
        ] {
            for target in GgmlType::ALL {
                assert_eq!(
                    choose_type(role, 64, target).dtype,
                    GgmlType::F32,
                    "{role:?} {target}"
                );
            }
        }
    }

    #[test]
    fn short_rows_fall_back_to_f16() {
        for target in [GgmlType::Q8_0, GgmlType::Q4_0] {
            let choice = choose_type(Role::SsmDtWeight, 48, target);
            assert_eq!(choice.dtype, GgmlType::F16);
            let note = choice.fallback.unwrap();
            assert!(note.contains("48"), "{note}");
            assert!(note.contains(target.name()), "{note}");
        }
        // Float types have a block size of 1 and never fall back.
        assert_eq!(
            choose_type(Role::SsmDtWeight, 48, GgmlType::BF16).dtype,
            GgmlType::BF16
        );
    }

    #[test]
    fn max_abs_skips_non_finite() {
        assert_eq!(max_abs(&[1.0, -70000.0, f32::NAN, f32::INFINITY]), 70000.0);
        assert_eq!(max_abs(&[]), 0.0);
    }
}
