//! Row counts from a Parquet footer, read from the last bytes of a file: what verification
//! reads back after upload, without fetching the whole file.

use bytes::Bytes;
use parquet::file::metadata::ParquetMetaDataReader;

use super::{MAGIC, MAGIC_ENCRYPTED};
use crate::native::format::{FormatError, catch_panics};

/// Parquet: from the last 8 bytes of a file (4-byte little-endian footer length + `PAR1`),
/// the footer length.
pub fn parquet_footer_len(last8: &[u8]) -> Result<u64, FormatError> {
    let Ok(last8) = <&[u8; 8]>::try_from(last8) else {
        return Err(FormatError::corrupt(
            "",
            format!(
                "a Parquet file ends with 8 bytes of footer length and magic, got {} bytes",
                last8.len()
            ),
        ));
    };
    let len = u64::from(u32::from_le_bytes([last8[0], last8[1], last8[2], last8[3]]));
    match &last8[4..] {
        m if m == MAGIC => Ok(len),
        m if m == MAGIC_ENCRYPTED => Err(FormatError::unsupported(
            "",
            "encrypted Parquet footer (PARE)",
        )),
        m => Err(FormatError::corrupt(
            "",
            format!("not a Parquet file: ends with {m:02x?}, not \"PAR1\""),
        )),
    }
}

/// Parquet: the rows of a file, from its footer, given (at least) the last footer length + 8
/// bytes of the file. The footer's row count must equal the sum of its row groups'.
pub fn parquet_rows_from_tail(tail: Bytes) -> Result<u64, FormatError> {
    if tail.len() < 8 {
        return Err(FormatError::corrupt(
            "",
            format!("Parquet tail of {} bytes", tail.len()),
        ));
    }
    let footer_len = parquet_footer_len(&tail[tail.len() - 8..])?;
    let available = tail.len() as u64 - 8;
    if footer_len > available {
        return Err(FormatError::corrupt(
            "",
            format!(
                "footer of {footer_len} bytes, but only {available} bytes given before the last 8"
            ),
        ));
    }
    let start = (available - footer_len) as usize;
    let metadata = catch_panics("", || {
        ParquetMetaDataReader::decode_metadata(&tail[start..tail.len() - 8])
            .map_err(|e| FormatError::corrupt("", format!("footer: {e}")))
    })?;
    let declared = metadata.file_metadata().num_rows();
    let sum: i64 = metadata.row_groups().iter().map(|rg| rg.num_rows()).sum();
    if declared != sum || declared < 0 {
        return Err(FormatError::corrupt(
            "",
            format!("footer declares {declared} rows, its row groups hold {sum}"),
        ));
    }
    Ok(declared as u64)
}
