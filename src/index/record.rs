//! One file's metadata and its compact binary form.

use super::{IndexError, OwnerKey};
use crate::encryption::Sealing;
use crate::storage::BlobName;

/// What the index knows of one stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Where the bytes are.
    pub blob: BlobName,
    /// Exact size in bytes.
    pub size: u64,
    /// The content type to serve.
    pub content_type: String,
    /// Unix time the upload completed.
    pub created: i64,
    /// Unix time from which the file is gone (never served at or after it).
    pub expires_at: i64,
    /// The uploader's pseudonym, if the slot named one.
    pub owner: Option<OwnerKey>,
    /// How the blob is encrypted; `None` for a plaintext blob.
    pub sealing: Option<Sealing>,
}

/// Format version of [`FileRecord::encode`]. Version 1 had no sealing
/// field (every blob was plaintext) and still decodes.
const VERSION: u8 = 2;

impl FileRecord {
    /// `version | created | expires_at | size | owner? | blob | content type
    /// | sealing?`, integers big-endian, strings length-prefixed (u16); an
    /// optional field is a 0 byte, or a 1 byte and the field (the sealing:
    /// epoch end, then the 60-byte wrapped data key).
    pub fn encode(&self) -> Vec<u8> {
        let blob = self.blob.key().as_bytes();
        let content_type = self.content_type.as_bytes();
        let mut out = Vec::with_capacity(1 + 24 + 33 + 4 + blob.len() + content_type.len() + 69);
        out.push(VERSION);
        out.extend_from_slice(&self.created.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        match &self.owner {
            Some(owner) => {
                out.push(1);
                out.extend_from_slice(&owner.0);
            }
            None => out.push(0),
        }
        for text in [blob, content_type] {
            let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&text[..usize::from(len)]);
        }
        match &self.sealing {
            Some(sealing) => {
                out.push(1);
                out.extend_from_slice(&sealing.epoch.to_be_bytes());
                out.extend_from_slice(&sealing.wrapped_key);
            }
            None => out.push(0),
        }
        out
    }

    /// Reads what [`FileRecord::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<FileRecord, IndexError> {
        let mut reader = Reader(bytes);
        let version = reader.take(1)?;
        if version != [1] && version != [VERSION] {
            return Err(IndexError::Corrupt);
        }
        let created = i64::from_be_bytes(reader.array()?);
        let expires_at = i64::from_be_bytes(reader.array()?);
        let size = u64::from_be_bytes(reader.array()?);
        let owner = match reader.take(1)? {
            [0] => None,
            [1] => Some(OwnerKey(reader.array()?)),
            _ => return Err(IndexError::Corrupt),
        };
        let blob = std::str::from_utf8(reader.prefixed()?)
            .ok()
            .and_then(BlobName::parse)
            .ok_or(IndexError::Corrupt)?;
        let content_type =
            String::from_utf8(reader.prefixed()?.to_vec()).map_err(|_| IndexError::Corrupt)?;
        let sealing = match version {
            [1] => None,
            _ => match reader.take(1)? {
                [0] => None,
                [1] => Some(Sealing {
                    epoch: i64::from_be_bytes(reader.array()?),
                    wrapped_key: reader.array()?,
                }),
                _ => return Err(IndexError::Corrupt),
            },
        };
        if !reader.0.is_empty() {
            return Err(IndexError::Corrupt);
        }
        Ok(FileRecord {
            blob,
            size,
            content_type,
            created,
            expires_at,
            owner,
            sealing,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
        if self.0.len() < n {
            return Err(IndexError::Corrupt);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], IndexError> {
        self.take(N)?.try_into().map_err(|_| IndexError::Corrupt)
    }

    fn prefixed(&mut self) -> Result<&'a [u8], IndexError> {
        let len = u16::from_be_bytes(self.array()?);
        self.take(usize::from(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(owner: Option<OwnerKey>) -> FileRecord {
        FileRecord {
            blob: BlobName::new(1_795_737_600),
            size: 12_345,
            content_type: "image/jpeg".into(),
            created: 1_795_737_600,
            expires_at: 1_795_737_600 + 86_400,
            owner,
            sealing: Some(Sealing {
                epoch: 1_795_910_400,
                wrapped_key: [5; 60],
            }),
        }
    }

    #[test]
    fn round_trip() {
        for owner in [None, Some(OwnerKey([9; 32]))] {
            for sealing in [None, record(None).sealing] {
                let record = FileRecord {
                    sealing,
                    ..record(owner)
                };
                assert_eq!(FileRecord::decode(&record.encode()).unwrap(), record);
            }
        }
    }

    #[test]
    fn version_1_records_still_decode_as_plaintext() {
        let record = FileRecord {
            sealing: None,
            ..record(Some(OwnerKey([3; 32])))
        };
        let mut v1 = record.encode();
        v1[0] = 1;
        v1.pop(); // Version 1 had no sealing field.
        assert_eq!(FileRecord::decode(&v1).unwrap(), record);
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let bytes = record(Some(OwnerKey([1; 32]))).encode();
        for cut in 0..bytes.len() {
            assert!(FileRecord::decode(&bytes[..cut]).is_err());
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(FileRecord::decode(&extra).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = FileRecord::decode(&bytes);
        }
    }
}
