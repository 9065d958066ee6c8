//! The ggml tensor types a GGUF file can name, with their block geometry.
//!
//! Sizes come from ggml's `type_traits` table (ggml/src/ggml.c of the vendored llama.cpp); a test in
//! `src/engine.rs` checks every entry against the linked ggml so the two can never drift apart.

/// One ggml tensor type: `block_elems` values are stored in `block_bytes` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType {
    pub id: u32,
    pub name: &'static str,
    pub block_elems: u64,
    pub block_bytes: u64,
}

impl GgmlType {
    /// Bytes taken by one row of `elems` values (rows are whole blocks in valid files).
    pub fn row_bytes(&self, elems: u64) -> u64 {
        elems.div_ceil(self.block_elems) * self.block_bytes
    }

    /// Bits per weight, the figure people compare quantizations by.
    pub fn bits_per_weight(&self) -> f64 {
        self.block_bytes as f64 * 8.0 / self.block_elems as f64
    }

    pub fn from_id(id: u32) -> Option<GgmlType> {
        TYPES.iter().copied().find(|t| t.id == id)
    }

    pub fn from_name(name: &str) -> Option<GgmlType> {
        TYPES.iter().copied().find(|t| t.name.eq_ignore_ascii_case(name))
    }
}

/// Serialised as its name ("Q4_K"), the way people write it.
impl serde::Serialize for GgmlType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

const fn t(id: u32, name: &'static str, block_elems: u64, block_bytes: u64) -> GgmlType {
    GgmlType { id, name, block_elems, block_bytes }
}

/// Every type ggml 0.26 can store in a GGUF file. Ids 4, 5 and 31–33, 36–38 were removed from ggml.
pub const TYPES: &[GgmlType] = &[
    t(0, "F32", 1, 4),
    t(1, "F16", 1, 2),
    t(2, "Q4_0", 32, 18),
    t(3, "Q4_1", 32, 20),
    t(6, "Q5_0", 32, 22),
    t(7, "Q5_1", 32, 24),
    t(8, "Q8_0", 32, 34),
    t(9, "Q8_1", 32, 36),
    t(10, "Q2_K", 256, 84),
    t(11, "Q3_K", 256, 110),
    t(12, "Q4_K", 256, 144),
    t(13, "Q5_K", 256, 176),
    t(14, "Q6_K", 256, 210),
    t(15, "Q8_K", 256, 292),
    t(16, "IQ2_XXS", 256, 66),
    t(17, "IQ2_XS", 256, 74),
    t(18, "IQ3_XXS", 256, 98),
    t(19, "IQ1_S", 256, 50),
    t(20, "IQ4_NL", 32, 18),
    t(21, "IQ3_S", 256, 110),
    t(22, "IQ2_S", 256, 82),
    t(23, "IQ4_XS", 256, 136),
    t(24, "I8", 1, 1),
    t(25, "I16", 1, 2),
    t(26, "I32", 1, 4),
    t(27, "I64", 1, 8),
    t(28, "F64", 1, 8),
    t(29, "IQ1_M", 256, 56),
    t(30, "BF16", 1, 2),
    t(34, "TQ1_0", 256, 54),
    t(35, "TQ2_0", 256, 66),
    t(39, "MXFP4", 32, 17),
    t(40, "NVFP4", 64, 36),
    t(41, "Q1_0", 128, 18),
    t(42, "Q2_0", 64, 18),
];

pub const F32: GgmlType = TYPES[0];
pub const F16: GgmlType = TYPES[1];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_notes_row_bytes() {
        // FIELD-NOTES §5: q8_0 34/32, q5_1 24/32, q5_0 22/32, q4_1 20/32, q4_0 and iq4_nl 18/32.
        for (name, bytes) in [("q8_0", 34), ("q5_1", 24), ("q5_0", 22), ("q4_1", 20), ("q4_0", 18), ("iq4_nl", 18)] {
            assert_eq!(GgmlType::from_name(name).unwrap().row_bytes(32), bytes, "{name}");
        }
        assert_eq!(F16.row_bytes(128), 256);
    }

    #[test]
    fn bits_per_weight_match_published_figures() {
        let bpw = |n: &str| GgmlType::from_name(n).unwrap().bits_per_weight();
        assert_eq!(bpw("Q4_0"), 4.5);
        assert_eq!(bpw("Q4_K"), 4.5);
        assert_eq!(bpw("Q2_K"), 2.625);
        assert_eq!(bpw("Q8_0"), 8.5);
        assert!((bpw("Q6_K") - 6.5625).abs() < 1e-9);
    }

    #[test]
    fn ids_are_unique() {
        for (i, a) in TYPES.iter().enumerate() {
            assert!(TYPES[i + 1..].iter().all(|b| b.id != a.id && b.name != a.name));
        }
    }
}
