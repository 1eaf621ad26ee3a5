//! Tests of the table container: round trips, lookups, damage, versions.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::format::RangeTombstone;

fn small_blocks() -> SstOptions {
    SstOptions {
        block_size_bytes: 128,
        restart_interval: 4,
        ..SstOptions::default()
    }
}

fn table(rows: &[Row], options: SstOptions) -> Bytes {
    let mut builder = SstBuilder::new(TableKind::Sorted, options);
    for row in rows {
        builder.add(row);
    }
    builder.finish()
}

fn sample_rows(count: u64) -> Vec<Row> {
    let mut rows: Vec<Row> = (0..count)
        .map(|index| {
            if index % 7 == 3 {
                Row::tombstone(format!("key-{:04}", index / 2), 10_000 - index)
            } else {
                Row::value(
                    format!("key-{:04}", index / 2),
                    format!("value-{index}"),
                    10_000 - index,
                )
            }
        })
        .collect();
    rows.sort_by(Row::table_order);
    rows
}

fn scan_all(sst: &SstBytes) -> Result<Vec<Row>, FormatError> {
    sst.scan_from(b"").collect()
}

proptest! {
    #[test]
    fn tables_round_trip_and_answer_lookups(
        entries in proptest::collection::btree_map(
            (proptest::collection::vec(0u8..6, 0..5), 0u64..50),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..30)),
            0..150,
        ),
        probe in proptest::collection::vec(0u8..6, 0..5),
        compression in proptest::sample::select(Compression::available()),
    ) {
        let mut rows: Vec<Row> = entries
            .into_iter()
            .map(|((key, seq), value)| Row {
                key: Bytes::from(key),
                value: value.map_or(RowValue::Tombstone, |value| RowValue::Value(Bytes::from(value))),
                seq,
                create_ms: None,
                expire_ms: None,
            })
            .collect();
        rows.sort_by(Row::table_order);
        let sst = SstBytes::open(table(&rows, SstOptions { compression, ..small_blocks() })).unwrap();
        prop_assert_eq!(scan_all(&sst).unwrap(), rows.clone());
        let newest: BTreeMap<Bytes, Row> = rows.iter().rev().map(|row| (row.key.clone(), row.clone())).collect();
        prop_assert_eq!(sst.get(&probe).unwrap(), newest.get(probe.as_slice()).cloned());
        prop_assert_eq!(sst.meta.stats.rows, rows.len() as u64);
    }
}

#[test]
fn statistics_describe_the_rows() {
    let rows = sample_rows(200);
    let sst = SstBytes::open(table(&rows, small_blocks())).unwrap();
    let stats = &sst.meta.stats;
    assert_eq!(stats.rows, 200);
    assert_eq!(
        stats.tombstones,
        rows.iter().filter(|row| row.value == RowValue::Tombstone).count() as u64
    );
    assert_eq!(
        (stats.first_key.as_ref(), stats.last_key.as_ref()),
        (&b"key-0000"[..], &b"key-0099"[..])
    );
    assert_eq!((stats.min_seq, stats.max_seq), (9_801, 10_000));
    assert!(stats.blocks > 10, "small blocks should give many: {}", stats.blocks);
    assert_eq!(sst.index.len() as u64, stats.blocks);
    assert!(sst.filter.is_some());
    assert_eq!(sst.footer.kind, TableKind::Sorted);
}

#[test]
fn small_tables_have_no_filter() {
    let sst = SstBytes::open(table(&sample_rows(10), SstOptions::default())).unwrap();
    assert!(sst.filter.is_none());
    assert_eq!(sst.get(b"key-0002").unwrap().map(|row| row.seq), Some(9_996));
}

/// Flip every byte and cut at every length: opening and reading either
/// fails with a corruption error or gives exactly the right rows.
#[test]
fn every_damaged_copy_is_refused_or_read_correctly() {
    let rows = sample_rows(60);
    let stored = table(&rows, small_blocks());
    let check = |bytes: Vec<u8>, what: String| {
        let outcome = SstBytes::open(Bytes::from(bytes)).and_then(|sst| {
            let all = scan_all(&sst)?;
            let found = sst.get(b"key-0010")?;
            Ok((all, found))
        });
        match outcome {
            Err(FormatError::Corrupt { .. }) => {}
            Err(other) => panic!("{what}: unexpected error {other:?}"),
            Ok((all, found)) => {
                assert_eq!(all, rows, "{what} changed the rows");
                assert_eq!(found.map(|row| row.seq), Some(9_980), "{what} changed a lookup");
            }
        }
    };
    for cut in 0..stored.len() {
        let outcome = SstBytes::open(stored.slice(..cut));
        assert!(outcome.is_err(), "cut at {cut} accepted");
    }
    for index in 0..stored.len() {
        let mut flipped = stored.to_vec();
        flipped[index] ^= 0x04;
        check(flipped, format!("flip at {index}"));
    }
}

#[test]
fn a_wal_stamp_round_trips_and_only_wal_tables_carry_one() {
    let stamp = WalStamp {
        role: WalRole::Filler,
        writer_epoch: 7,
        durable_through_wal_id: 41,
    };
    let mut builder = SstBuilder::new(TableKind::Wal, small_blocks());
    builder.set_wal_stamp(stamp);
    let sst = SstBytes::open(builder.finish()).unwrap();
    assert_eq!(sst.meta.wal_stamp, Some(stamp));
    let mut sorted = SstBuilder::new(TableKind::Sorted, small_blocks());
    sorted.set_wal_stamp(stamp);
    sorted.add(&Row::value("k", "v", 1));
    assert_eq!(SstBytes::open(sorted.finish()).unwrap().meta.wal_stamp, None);
}

/// A table whose footer claims `version`, resealed.
fn with_version(table: &Bytes, version: u32) -> Bytes {
    let mut bytes = table.to_vec();
    let footer = bytes.len() - FOOTER_SIZE;
    bytes[footer + 16..footer + 20].copy_from_slice(&version.to_le_bytes());
    let crc = crate::format::codec::crc32(&bytes[footer..footer + 20]);
    bytes[footer + 20..footer + 24].copy_from_slice(&crc.to_le_bytes());
    Bytes::from(bytes)
}

#[test]
fn a_newer_format_version_is_unsupported_and_version_one_still_reads() {
    let mut builder = SstBuilder::new(TableKind::Wal, small_blocks());
    builder.add(&Row::value("k", "v", 1));
    let table = builder.finish();
    assert!(SstBytes::open(with_version(&table, 1)).is_ok(), "version 1");
    let newer = SstBytes::open(with_version(&table, FORMAT_VERSION + 1)).unwrap_err();
    assert!(matches!(newer, FormatError::Unsupported { .. }), "{newer}");
    let zero = SstBytes::open(with_version(&table, 0)).unwrap_err();
    assert!(matches!(zero, FormatError::Corrupt { .. }), "{zero}");
}

/// A table is version 3 (what builds before merge operands read) unless it
/// holds an operand; then it is version 4, which those builds refuse as
/// `Unsupported` (their newest is 3), and its operands read back as such.
#[test]
fn only_a_table_with_merge_operands_is_version_4() {
    let mut plain = SstBuilder::new(TableKind::Sorted, small_blocks());
    plain.add(&Row::value("a", "v", 2));
    plain.add(&Row::tombstone("b", 1));
    assert_eq!(
        SstBytes::open(plain.finish()).unwrap().footer.version,
        PLAIN_FORMAT_VERSION
    );
    let mut merged = SstBuilder::new(TableKind::Sorted, small_blocks());
    let operand = Row {
        value: RowValue::Merge(Bytes::from_static(b"+1")),
        ..Row::value("a", "", 3)
    };
    merged.add(&operand);
    merged.add(&Row::value("a", "v", 2));
    let table = SstBytes::open(merged.finish()).unwrap();
    assert_eq!(table.footer.version, 4);
    assert_eq!(table.footer.filter_layout(), FilterLayout::Blocked);
    assert_eq!(table.get(b"a").unwrap(), Some(operand));
}

/// A version 2 table (a classic filter) written by an older build still
/// answers every lookup: its filter is read in the classic layout.
#[test]
fn a_version_2_table_reads_its_classic_filter() {
    let mut old = SstBuilder::new(TableKind::Sorted, small_blocks());
    old.write_version_2();
    let mut new = SstBuilder::new(TableKind::Sorted, small_blocks());
    for key in 0..2_000u64 {
        let row = Row::value(format!("key{:06}", 2 * key), "v", key + 1);
        old.add(&row);
        new.add(&row);
    }
    let (old, new) = (
        SstBytes::open(old.finish()).unwrap(),
        SstBytes::open(new.finish()).unwrap(),
    );
    assert_eq!(old.footer.version, 2);
    assert_eq!(old.footer.filter_layout(), FilterLayout::Classic);
    assert_eq!(new.footer.version, PLAIN_FORMAT_VERSION);
    assert_eq!(new.footer.filter_layout(), FilterLayout::Blocked);
    for key in 0..2_000u64 {
        let present = format!("key{:06}", 2 * key);
        for table in [&old, &new] {
            assert!(table.get(present.as_bytes()).unwrap().is_some(), "{present}");
        }
    }
    // Absent keys are ruled out by either filter, so each is read in the
    // layout it was written in.
    for table in [&old, &new] {
        let filter = table.filter.as_ref().expect("a filter");
        let passed = (0..2_000u64)
            .filter(|key| filter.may_contain(format!("key{:06}", 2 * key + 1).as_bytes()))
            .count();
        assert!(passed < 40, "{passed} of 2000 absent keys passed the filter");
    }
}

#[test]
fn wal_tables_are_read_from_a_sequence_number() {
    let rows: Vec<Row> = (1..=300u64)
        .map(|seq| Row::value(format!("k{}", seq % 17), "v", seq))
        .collect();
    let mut builder = SstBuilder::new(TableKind::Wal, small_blocks());
    for row in &rows {
        builder.add(row);
    }
    let sst = SstBytes::open(builder.finish()).unwrap();
    assert_eq!(sst.footer.kind, TableKind::Wal);
    for from in [0u64, 1, 2, 150, 299, 300, 301] {
        let found: Vec<u64> = sst.wal_rows_from(from).map(|row| row.unwrap().seq).collect();
        let expected: Vec<u64> = (from.max(1)..=300).collect();
        assert_eq!(found, expected, "from {from}");
    }
}

#[test]
fn a_wrong_magic_or_version_is_named() {
    let stored = table(&sample_rows(5), SstOptions::default());
    let mut wrong_magic = stored.to_vec();
    let last = wrong_magic.len() - 1;
    wrong_magic[last] = b'X';
    let error = SstBytes::open(Bytes::from(wrong_magic)).unwrap_err();
    assert!(error.to_string().contains("wrong magic"), "{error}");

    let mut future = stored.to_vec();
    let footer = future.len() - FOOTER_SIZE;
    future[footer + 16] = 9;
    // Re-seal so only the version is wrong.
    let checksum = crate::format::codec::crc32(&future[footer..footer + 20]);
    future[footer + 20..footer + 24].copy_from_slice(&checksum.to_le_bytes());
    let error = SstBytes::open(Bytes::from(future)).unwrap_err();
    assert!(error.to_string().contains("format version 9"), "{error}");
}

fn range_tombstone(start: &str, end: Option<&str>, seq: u64) -> RangeTombstone {
    RangeTombstone {
        start: Bytes::copy_from_slice(start.as_bytes()),
        end: end.map(|end| Bytes::copy_from_slice(end.as_bytes())),
        seq,
    }
}

/// The table `tests/fixtures/range_tombstones.sst` holds: two rows and two
/// range tombstones, one unbounded.
fn range_fixture() -> Bytes {
    let mut builder = SstBuilder::new(TableKind::Sorted, small_blocks());
    builder.add(&Row::value("apple", "red", 4));
    builder.add(&Row::value("melon", "green", 7));
    builder.add_range_tombstone(range_tombstone("b", Some("m"), 6));
    builder.add_range_tombstone(range_tombstone("n", None, 9));
    builder.finish()
}

const RANGE_FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/range_tombstones.sst");

/// Range tombstones make a table version 5, are read back with it, and
/// widen its sequence range; a WAL table carries them next to its stamp,
/// and a table of nothing but range tombstones is a valid table.
#[test]
fn range_tombstones_round_trip_in_version_5_tables() {
    let table = SstBytes::open(range_fixture()).unwrap();
    assert_eq!(table.footer.version, 5);
    assert_eq!(
        table.meta.range_tombstones,
        vec![range_tombstone("b", Some("m"), 6), range_tombstone("n", None, 9)]
    );
    assert_eq!((table.meta.stats.min_seq, table.meta.stats.max_seq), (4, 9));
    assert_eq!(table.get(b"melon").unwrap().map(|row| row.seq), Some(7));

    let mut wal = SstBuilder::new(TableKind::Wal, small_blocks());
    wal.add(&Row::value("k", "v", 3));
    wal.add_range_tombstone(range_tombstone("a", Some("z"), 2));
    let stamp = WalStamp {
        role: WalRole::Data,
        writer_epoch: 7,
        durable_through_wal_id: 11,
    };
    wal.set_wal_stamp(stamp);
    let wal = SstBytes::open(wal.finish()).unwrap();
    assert_eq!(wal.meta.wal_stamp, Some(stamp));
    assert_eq!(wal.meta.range_tombstones.len(), 1);
    assert_eq!((wal.meta.stats.min_seq, wal.meta.stats.max_seq), (2, 3));

    let mut only = SstBuilder::new(TableKind::Sorted, small_blocks());
    only.add_range_tombstone(range_tombstone("c", Some("d"), 12));
    let only = SstBytes::open(only.finish()).unwrap();
    assert_eq!(only.meta.stats.rows, 0);
    assert_eq!((only.meta.stats.min_seq, only.meta.stats.max_seq), (12, 12));
    assert_eq!(only.get(b"c").unwrap(), None);
}

/// The committed fixture is what this build writes (the format has not
/// drifted), this build reads it, and a build that predates range
/// tombstones (newest format 4) refuses it as `Unsupported`, not as
/// corrupt and not by reading it without its tombstones.
#[test]
fn the_range_tombstone_fixture_is_unsupported_before_version_5() {
    // `TALUS_WRITE_FIXTURES=1` rewrites it, for a deliberate format change.
    if std::env::var_os("TALUS_WRITE_FIXTURES").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/range_tombstones.sst");
        std::fs::write(path, range_fixture()).unwrap();
        return;
    }
    let fixture = Bytes::from_static(RANGE_FIXTURE);
    assert_eq!(fixture, range_fixture(), "the version 5 format changed");
    let table = SstBytes::open(fixture.clone()).unwrap();
    assert_eq!(table.meta.range_tombstones.len(), 2);
    let older = Footer::decode_up_to(&fixture, fixture.len() as u64, MERGE_FORMAT_VERSION).unwrap_err();
    assert!(matches!(older, FormatError::Unsupported { .. }), "{older}");
    assert!(older.to_string().contains("version 5"), "{older}");
}

/// Every cut and every flipped byte of a table with range tombstones is
/// an error, never a panic or a table missing its tombstones.
#[test]
fn damaged_range_tombstone_sections_are_errors() {
    let stored = range_fixture();
    for cut in 0..stored.len() {
        assert!(SstBytes::open(stored.slice(..cut)).is_err(), "cut at {cut}");
    }
    for at in 0..stored.len() {
        let mut bytes = stored.to_vec();
        bytes[at] ^= 0x5a;
        if let Ok(table) = SstBytes::open(Bytes::from(bytes)) {
            // A flip in a data block passes the open; the metadata is whole.
            assert_eq!(table.meta.range_tombstones.len(), 2, "flip at {at}");
        }
    }
}
