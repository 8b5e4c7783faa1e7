//! Writing 2-D float32 arrays in NumPy's `.npy` format (version 1.0).

use std::io::{self, Write};

/// Writes the header and the row-major data of a `[rows, cols]` float32 array.
pub fn write_f32_2d(out: &mut impl Write, rows: usize, cols: usize, data: &[f32]) -> io::Result<()> {
    if data.len() != rows * cols {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "npy: data length differs from rows * cols"));
    }

    // The header dict is padded with spaces so that magic + lengths + dict is a multiple of 64
    // bytes, and ends with a newline, as the format requires.
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let unpadded = 6 + 2 + 2 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + padding + 1;

    out.write_all(b"\x93NUMPY\x01\x00")?;
    out.write_all(&(header_len as u16).to_le_bytes())?;
    out.write_all(dict.as_bytes())?;
    out.write_all(&vec![b' '; padding])?;
    out.write_all(b"\n")?;
    for v in data {
        out.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_parsable() {
        let mut buf = Vec::new();
        write_f32_2d(&mut buf, 2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let header_len = u16::from_le_bytes([buf[8], buf[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&buf[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (2, 3)"), "{header}");
        assert!(header.ends_with('\n'));
        assert_eq!(buf.len(), 10 + header_len + 24);
        assert_eq!(&buf[10 + header_len..14 + header_len], &1.0f32.to_le_bytes());
    }
}
