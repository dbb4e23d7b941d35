//! What each write does to the tables, inside a transaction the caller
//! commits: every record's secondary orders and the counters change with
//! it, so they never drift apart.

use redb::{ReadableTable, Table, WriteTransaction};

use super::{
    BY_CREATED, BY_EXPIRY, BY_OWNER, FILES, Key, META, OWNER_STORED, OWNER_UPLOADS, TOMBSTONES,
    TOMBSTONES_BY_TIME, UPLOADS_BY_MINUTE, unavailable,
};
use crate::index::{FileRecord, IndexError, Inserted, SlotKey};
use crate::quota::minute_of;

/// Adds `delta` to the counter `name`.
fn bump(meta: &mut Table<'_, &str, u64>, name: &str, delta: i64) -> Result<(), IndexError> {
    let current = meta
        .get(name)
        .map_err(unavailable)?
        .map_or(0, |v| v.value());
    let next = current.saturating_add_signed(delta);
    meta.insert(name, &next).map_err(unavailable)?;
    Ok(())
}

/// Adds `size` to (or, unless `add`, takes it from) the stored bytes of
/// `owner`; an owner with nothing stored has no row.
pub(super) fn add_stored(
    table: &mut Table<'_, Key, u64>,
    owner: Key,
    size: u64,
    add: bool,
) -> Result<(), IndexError> {
    let current = table
        .get(&owner)
        .map_err(unavailable)?
        .map_or(0, |v| v.value());
    let next = if add {
        current.saturating_add(size)
    } else {
        current.saturating_sub(size)
    };
    if next == 0 {
        table.remove(&owner).map_err(unavailable)?;
    } else {
        table.insert(&owner, &next).map_err(unavailable)?;
    }
    Ok(())
}

/// Stores `record` under `key` unless a record or a tombstone exists.
pub(super) fn insert_in(
    txn: &WriteTransaction,
    key: SlotKey,
    record: &FileRecord,
) -> Result<Inserted, IndexError> {
    let mut files = txn.open_table(FILES).map_err(unavailable)?;
    if files.get(&key.0).map_err(unavailable)?.is_some() {
        return Ok(Inserted::Exists);
    }
    let tombstones = txn.open_table(TOMBSTONES).map_err(unavailable)?;
    if tombstones.get(&key.0).map_err(unavailable)?.is_some() {
        return Ok(Inserted::Gone);
    }
    files
        .insert(&key.0, record.encode().as_slice())
        .map_err(unavailable)?;
    txn.open_table(BY_EXPIRY)
        .map_err(unavailable)?
        .insert(&(record.expires_at, key.0), &())
        .map_err(unavailable)?;
    txn.open_table(BY_CREATED)
        .map_err(unavailable)?
        .insert(&(record.created, key.0), &())
        .map_err(unavailable)?;
    if let Some(owner) = record.owner {
        txn.open_table(BY_OWNER)
            .map_err(unavailable)?
            .insert(&(owner.0, key.0), &())
            .map_err(unavailable)?;
        let mut stored = txn.open_table(OWNER_STORED).map_err(unavailable)?;
        add_stored(&mut stored, owner.0, record.size, true)?;
        let minute = minute_of(record.created);
        let mut uploads = txn.open_table(OWNER_UPLOADS).map_err(unavailable)?;
        let before = uploads
            .get(&(owner.0, minute))
            .map_err(unavailable)?
            .map_or(0, |v| v.value());
        uploads
            .insert(&(owner.0, minute), &before.saturating_add(record.size))
            .map_err(unavailable)?;
        txn.open_table(UPLOADS_BY_MINUTE)
            .map_err(unavailable)?
            .insert(&(minute, owner.0), &())
            .map_err(unavailable)?;
    }
    let mut meta = txn.open_table(META).map_err(unavailable)?;
    bump(&mut meta, "files", 1)?;
    bump(
        &mut meta,
        "bytes",
        i64::try_from(record.size).unwrap_or(i64::MAX),
    )?;
    Ok(Inserted::Created)
}

/// Removes the records of `keys` (missing ones are skipped), leaving a
/// tombstone dated `deleted_at` for each; returns the removed records.
pub(super) fn remove_in(
    txn: &WriteTransaction,
    keys: Vec<SlotKey>,
    deleted_at: i64,
) -> Result<Vec<(SlotKey, FileRecord)>, IndexError> {
    let mut removed = Vec::with_capacity(keys.len());
    {
        let mut files = txn.open_table(FILES).map_err(unavailable)?;
        let mut by_expiry = txn.open_table(BY_EXPIRY).map_err(unavailable)?;
        let mut by_created = txn.open_table(BY_CREATED).map_err(unavailable)?;
        let mut by_owner = txn.open_table(BY_OWNER).map_err(unavailable)?;
        let mut owner_stored = txn.open_table(OWNER_STORED).map_err(unavailable)?;
        let mut tombstones = txn.open_table(TOMBSTONES).map_err(unavailable)?;
        let mut tombstones_by_time = txn.open_table(TOMBSTONES_BY_TIME).map_err(unavailable)?;
        let mut meta = txn.open_table(META).map_err(unavailable)?;
        let (mut bytes, mut new_tombstones) = (0u64, 0i64);
        for key in keys {
            let Some(value) = files.remove(&key.0).map_err(unavailable)? else {
                continue;
            };
            let record = FileRecord::decode(value.value())?;
            drop(value);
            by_expiry
                .remove(&(record.expires_at, key.0))
                .map_err(unavailable)?;
            by_created
                .remove(&(record.created, key.0))
                .map_err(unavailable)?;
            if let Some(owner) = record.owner {
                by_owner.remove(&(owner.0, key.0)).map_err(unavailable)?;
                add_stored(&mut owner_stored, owner.0, record.size, false)?;
            }
            if let Some(old) = tombstones
                .insert(&key.0, &deleted_at)
                .map_err(unavailable)?
            {
                let old = old.value();
                tombstones_by_time
                    .remove(&(old, key.0))
                    .map_err(unavailable)?;
            } else {
                new_tombstones += 1;
            }
            tombstones_by_time
                .insert(&(deleted_at, key.0), &())
                .map_err(unavailable)?;
            bytes += record.size;
            removed.push((key, record));
        }
        let count = i64::try_from(removed.len()).unwrap_or(i64::MAX);
        bump(&mut meta, "files", -count)?;
        bump(
            &mut meta,
            "bytes",
            -i64::try_from(bytes).unwrap_or(i64::MAX),
        )?;
        bump(&mut meta, "tombstones", new_tombstones)?;
    }
    Ok(removed)
}

/// Forgets up to `limit` tombstones dated before `before`; returns how many.
pub(super) fn forget_in(
    txn: &WriteTransaction,
    before: i64,
    limit: usize,
) -> Result<usize, IndexError> {
    let forgotten = {
        let mut by_time = txn.open_table(TOMBSTONES_BY_TIME).map_err(unavailable)?;
        let mut tombstones = txn.open_table(TOMBSTONES).map_err(unavailable)?;
        let old: Vec<(i64, Key)> = by_time
            .range((i64::MIN, [0u8; 32])..(before, [0u8; 32]))
            .map_err(unavailable)?
            .take(limit)
            .map(|entry| entry.map(|(k, _)| k.value()).map_err(unavailable))
            .collect::<Result<_, _>>()?;
        for (at, key) in &old {
            by_time.remove(&(*at, *key)).map_err(unavailable)?;
            tombstones.remove(key).map_err(unavailable)?;
        }
        let mut meta = txn.open_table(META).map_err(unavailable)?;
        bump(
            &mut meta,
            "tombstones",
            -i64::try_from(old.len()).unwrap_or(0),
        )?;
        old.len()
    };
    Ok(forgotten)
}
