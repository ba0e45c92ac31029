//! What a script may store — key length, value size, the per-script quota —
//! and the refusals it sees as exceptions (`StorageError`).

use crate::metrics::StorageFailure;

/// Longest key, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 1024;

#[derive(Clone, Copy, Debug)]
pub struct StorageLimits {
    /// Largest serialised value.
    pub max_value_bytes: usize,
    /// Most bytes (keys plus values) one script may keep.
    pub quota_bytes: u64,
}

impl Default for StorageLimits {
    fn default() -> Self {
        StorageLimits {
            max_value_bytes: 1 << 20,
            quota_bytes: 100 << 20,
        }
    }
}

/// A refusal the script sees as an exception of the matching class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageError {
    Type(String),
    Range(String),
    Failed(String),
}

impl From<&StorageError> for StorageFailure {
    fn from(error: &StorageError) -> StorageFailure {
        match error {
            StorageError::Type(_) => StorageFailure::Type,
            StorageError::Range(_) => StorageFailure::Range,
            StorageError::Failed(_) => StorageFailure::Failed,
        }
    }
}

impl StorageError {
    /// The message the script sees, whatever the exception's class.
    pub fn into_message(self) -> String {
        let (StorageError::Type(m) | StorageError::Range(m) | StorageError::Failed(m)) = self;
        m
    }
}

/// A key is a non-empty string of at most `MAX_KEY_BYTES` bytes of UTF-8.
pub fn check_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() {
        return Err(StorageError::Type(
            "storage key must be a non-empty string".into(),
        ));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StorageError::Range(format!(
            "storage key is {} bytes of UTF-8; the most is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}
