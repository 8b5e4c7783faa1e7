//! A reader for the stored (uncompressed) entries of a ZIP archive held in memory, as
//! `torch.save` writes them.
//!
//! PyTorch's writer (miniz, inside `PyTorchStreamWriter`) stores every entry without
//! compression and writes ZIP64 records. This reader accepts plain and ZIP64 archives,
//! returns each stored entry as a slice of the input and rejects compressed or encrypted
//! entries, multi-disk archives and every offset or size that points outside the input.

use std::collections::BTreeMap;

/// Signature of the end of central directory record.
const EOCD_SIGNATURE: u32 = 0x0605_4b50;
/// Signature of the ZIP64 end of central directory locator.
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
/// Signature of the ZIP64 end of central directory record.
const ZIP64_EOCD_SIGNATURE: u32 = 0x0606_4b50;
/// Signature of a central directory file header.
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
/// Signature of a local file header.
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;

const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_LEN: usize = 56;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
/// The archive comment is at most this long, so the end record lies within the last
/// `EOCD_LEN + MAX_COMMENT` bytes.
const MAX_COMMENT: usize = 0xffff;
/// Header ID of the ZIP64 extended information extra field.
const ZIP64_EXTRA_ID: u16 = 0x0001;
/// Compression method 0, stored.
const METHOD_STORED: u16 = 0;
/// General purpose flag bit 0, encrypted.
const FLAG_ENCRYPTED: u16 = 1;

/// The reason an archive or one of its entries cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZipError {
    /// No end of central directory record was found.
    #[error(
        "no ZIP end of central directory record found; the file is truncated or is not a \
         ZIP archive (torch.save has written ZIP archives since PyTorch 1.6)"
    )]
    NotZip,
    /// A record lies outside the file or is cut short.
    #[error(
        "truncated ZIP archive: the {what} at byte {offset} needs {len} bytes, but the file has {file_len}"
    )]
    Truncated {
        /// The record or entry.
        what: String,
        /// Its start offset.
        offset: u64,
        /// Bytes it needs.
        len: u64,
        /// Length of the file.
        file_len: u64,
    },
    /// A record does not start with its signature.
    #[error("corrupt ZIP archive: expected the {what} signature at byte {offset}")]
    BadSignature {
        /// The record expected there.
        what: &'static str,
        /// Its offset.
        offset: u64,
    },
    /// The archive spans several disks.
    #[error("the ZIP archive spans several disks; join it into one file first")]
    MultiDisk,
    /// The entry count cannot fit in the central directory.
    #[error(
        "corrupt ZIP archive: {count} entries declared, but the central directory of \
         {cd_size} bytes holds at most {max}"
    )]
    TooManyEntries {
        /// Declared count.
        count: u64,
        /// Size of the central directory in bytes.
        cd_size: u64,
        /// Maximum entry count that size allows.
        max: u64,
    },
    /// A name is not UTF-8 or appears twice.
    #[error("corrupt ZIP archive: entry name {name:?} {problem}")]
    BadName {
        /// The name, lossily decoded.
        name: String,
        /// Description of the problem.
        problem: &'static str,
    },
    /// A needed ZIP64 field is missing from the extra field.
    #[error("corrupt ZIP archive: entry {name} lacks the ZIP64 field for its {field}")]
    MissingZip64Field {
        /// The entry.
        name: String,
        /// The field.
        field: &'static str,
    },
    /// The entry is compressed.
    #[error(
        "entry {name} is compressed (method {method}); only stored entries are read, as \
         torch.save writes them; re-save the checkpoint with torch.save"
    )]
    Compressed {
        /// The entry.
        name: String,
        /// Its compression method.
        method: u16,
    },
    /// The entry is encrypted.
    #[error("entry {name} is encrypted; decrypt the archive first")]
    Encrypted {
        /// The entry.
        name: String,
    },
    /// The entry is not in the archive.
    #[error("entry {name} not found in the archive")]
    NotFound {
        /// The entry.
        name: String,
    },
    /// The entry's bytes do not match its CRC-32.
    #[error("entry {name} is corrupt: CRC-32 is {found:08x}, the archive records {expected:08x}")]
    Crc {
        /// The entry.
        name: String,
        /// CRC of the bytes.
        found: u32,
        /// CRC in the central directory.
        expected: u32,
    },
}

/// One entry as the central directory describes it.
#[derive(Clone, Debug)]
struct Entry {
    flags: u16,
    method: u16,
    crc32: u32,
    compressed_size: u64,
    uncompressed_size: u64,
    local_offset: u64,
}

/// The central directory of an archive and the bytes it indexes.
#[derive(Debug)]
pub struct ZipArchive<'a> {
    data: &'a [u8],
    entries: BTreeMap<String, Entry>,
}

impl<'a> ZipArchive<'a> {
    /// Parses the central directory of `data`. Entries are checked when they are read.
    pub fn parse(data: &'a [u8]) -> Result<Self, ZipError> {
        let eocd = find_eocd(data)?;
        let reader = Reader { data };
        if reader.u16(eocd + 4)? != 0 || reader.u16(eocd + 6)? != 0 {
            return Err(ZipError::MultiDisk);
        }
        let mut count = u64::from(reader.u16(eocd + 10)?);
        let mut cd_size = u64::from(reader.u32(eocd + 12)?);
        let mut cd_offset = u64::from(reader.u32(eocd + 16)?);

        if let Some(locator) = eocd.checked_sub(ZIP64_LOCATOR_LEN)
            && reader.u32(locator)? == ZIP64_LOCATOR_SIGNATURE
        {
            let record = reader.u64(locator + 8)?;
            let record = reader.offset(record, ZIP64_EOCD_LEN as u64, "ZIP64 end record")?;
            if reader.u32(record)? != ZIP64_EOCD_SIGNATURE {
                return Err(ZipError::BadSignature {
                    what: "ZIP64 end of central directory",
                    offset: record as u64,
                });
            }
            if reader.u32(record + 16)? != 0 || reader.u32(record + 20)? != 0 {
                return Err(ZipError::MultiDisk);
            }
            count = reader.u64(record + 32)?;
            cd_size = reader.u64(record + 40)?;
            cd_offset = reader.u64(record + 48)?;
        }

        let max = cd_size / CENTRAL_LEN as u64;
        if count > max {
            return Err(ZipError::TooManyEntries {
                count,
                cd_size,
                max,
            });
        }
        let start = reader.offset(cd_offset, cd_size, "central directory")?;
        let mut entries = BTreeMap::new();
        let mut at = start;
        for _ in 0..count {
            let (name, entry, next) = read_central(&reader, at)?;
            if next > start + cd_size as usize {
                return Err(reader.truncated("central directory entry", at, (next - at) as u64));
            }
            if entries.contains_key(&name) {
                return Err(ZipError::BadName {
                    name,
                    problem: "appears twice",
                });
            }
            entries.insert(name, entry);
            at = next;
        }
        Ok(ZipArchive { data, entries })
    }

    /// Iterates over the entry names in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Returns the bytes of the stored entry `name`, without checking its CRC-32.
    pub fn stored(&self, name: &str) -> Result<&'a [u8], ZipError> {
        let entry = self.entries.get(name).ok_or_else(|| ZipError::NotFound {
            name: name.to_owned(),
        })?;
        if entry.flags & FLAG_ENCRYPTED != 0 {
            return Err(ZipError::Encrypted {
                name: name.to_owned(),
            });
        }
        if entry.method != METHOD_STORED || entry.compressed_size != entry.uncompressed_size {
            return Err(ZipError::Compressed {
                name: name.to_owned(),
                method: entry.method,
            });
        }
        let reader = Reader { data: self.data };
        let what = format!("local header of {name}");
        let local = reader.offset(entry.local_offset, LOCAL_LEN as u64, &what)?;
        if reader.u32(local)? != LOCAL_SIGNATURE {
            return Err(ZipError::BadSignature {
                what: "local file header",
                offset: local as u64,
            });
        }
        // The local header repeats the name and has its own extra field, whose length
        // (PyTorch pads it to align the data) may differ from the central one.
        let name_len = u64::from(reader.u16(local + 26)?);
        let extra_len = u64::from(reader.u16(local + 28)?);
        let data_start = local as u64 + LOCAL_LEN as u64 + name_len + extra_len;
        let start = reader.offset(
            data_start,
            entry.compressed_size,
            &format!("data of {name}"),
        )?;
        Ok(&self.data[start..start + entry.compressed_size as usize])
    }

    /// Returns the bytes of the stored entry `name` after checking its CRC-32.
    pub fn stored_checked(&self, name: &str) -> Result<&'a [u8], ZipError> {
        let bytes = self.stored(name)?;
        let expected = self.entries[name].crc32;
        let found = crc32fast::hash(bytes);
        if found != expected {
            return Err(ZipError::Crc {
                name: name.to_owned(),
                found,
                expected,
            });
        }
        Ok(bytes)
    }
}

/// Finds the end of central directory record, searching back from the end of the file.
fn find_eocd(data: &[u8]) -> Result<usize, ZipError> {
    let last = data.len().checked_sub(EOCD_LEN).ok_or(ZipError::NotZip)?;
    let first = last.saturating_sub(MAX_COMMENT);
    (first..=last)
        .rev()
        .find(|&at| data[at..at + 4] == EOCD_SIGNATURE.to_le_bytes())
        .ok_or(ZipError::NotZip)
}

/// Reads one central directory header at `at`. Returns its name, the entry and the offset
/// of the next header.
fn read_central(reader: &Reader<'_>, at: usize) -> Result<(String, Entry, usize), ZipError> {
    reader.check(at, CENTRAL_LEN, "central directory entry")?;
    if reader.u32(at)? != CENTRAL_SIGNATURE {
        return Err(ZipError::BadSignature {
            what: "central directory entry",
            offset: at as u64,
        });
    }
    let name_len = usize::from(reader.u16(at + 28)?);
    let extra_len = usize::from(reader.u16(at + 30)?);
    let comment_len = usize::from(reader.u16(at + 32)?);
    let name_start = at + CENTRAL_LEN;
    reader.check(
        name_start,
        name_len + extra_len + comment_len,
        "central directory entry",
    )?;
    let name_bytes = &reader.data[name_start..name_start + name_len];
    let name = std::str::from_utf8(name_bytes)
        .map_err(|_| ZipError::BadName {
            name: String::from_utf8_lossy(name_bytes).into_owned(),
            problem: "is not UTF-8",
        })?
        .to_owned();

    let mut entry = Entry {
        flags: reader.u16(at + 8)?,
        method: reader.u16(at + 10)?,
        crc32: reader.u32(at + 16)?,
        compressed_size: u64::from(reader.u32(at + 20)?),
        uncompressed_size: u64::from(reader.u32(at + 24)?),
        local_offset: u64::from(reader.u32(at + 42)?),
    };
    let extra = &reader.data[name_start + name_len..name_start + name_len + extra_len];
    apply_zip64_extra(&name, extra, &mut entry)?;
    Ok((name, entry, name_start + name_len + extra_len + comment_len))
}

/// Replaces the 32-bit fields that are saturated (0xffffffff) with their 64-bit values from
/// the ZIP64 extra field, which lists them in the order uncompressed size, compressed size,
/// local header offset.
fn apply_zip64_extra(name: &str, extra: &[u8], entry: &mut Entry) -> Result<(), ZipError> {
    const SATURATED: u64 = 0xffff_ffff;
    let mut fields: &[u8] = &[];
    let mut rest = extra;
    while rest.len() >= 4 {
        let id = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let body = rest.get(4..4 + len).unwrap_or(&rest[4..]);
        if id == ZIP64_EXTRA_ID {
            fields = body;
            break;
        }
        rest = &rest[(4 + len).min(rest.len())..];
    }
    let targets: [(&mut u64, &'static str); 3] = [
        (&mut entry.uncompressed_size, "uncompressed size"),
        (&mut entry.compressed_size, "compressed size"),
        (&mut entry.local_offset, "local header offset"),
    ];
    for (value, field) in targets {
        if *value != SATURATED {
            continue;
        }
        let Some((bytes, tail)) = fields.split_first_chunk::<8>() else {
            return Err(ZipError::MissingZip64Field {
                name: name.to_owned(),
                field,
            });
        };
        *value = u64::from_le_bytes(*bytes);
        fields = tail;
    }
    Ok(())
}

/// Bounds-checked little-endian reads from the archive bytes.
struct Reader<'a> {
    data: &'a [u8],
}

impl Reader<'_> {
    fn truncated(&self, what: &str, offset: usize, len: u64) -> ZipError {
        ZipError::Truncated {
            what: what.to_owned(),
            offset: offset as u64,
            len,
            file_len: self.data.len() as u64,
        }
    }

    fn check(&self, at: usize, len: usize, what: &str) -> Result<(), ZipError> {
        match at.checked_add(len) {
            Some(end) if end <= self.data.len() => Ok(()),
            _ => Err(self.truncated(what, at, len as u64)),
        }
    }

    /// Converts a 64-bit offset from the file into an index, checking that `len` bytes
    /// follow it.
    fn offset(&self, offset: u64, len: u64, what: &str) -> Result<usize, ZipError> {
        let fits = offset
            .checked_add(len)
            .is_some_and(|end| end <= self.data.len() as u64);
        if !fits {
            return Err(ZipError::Truncated {
                what: what.to_owned(),
                offset,
                len,
                file_len: self.data.len() as u64,
            });
        }
        Ok(offset as usize)
    }

    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N], ZipError> {
        self.data
            .get(at..at.saturating_add(N))
            .and_then(|slice| slice.try_into().ok())
            .ok_or_else(|| self.truncated("ZIP record", at, N as u64))
    }

    fn u16(&self, at: usize) -> Result<u16, ZipError> {
        self.bytes(at).map(u16::from_le_bytes)
    }

    fn u32(&self, at: usize) -> Result<u32, ZipError> {
        self.bytes(at).map(u32::from_le_bytes)
    }

    fn u64(&self, at: usize) -> Result<u64, ZipError> {
        self.bytes(at).map(u64::from_le_bytes)
    }
}
