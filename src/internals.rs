//! Not part of the API: no documentation promise, no semver promise.
//!
//! The engine's insides that this repository's fuzz targets, benches and
//! white-box tests drive directly (the table format, the memtable, the table
//! store, the metadata envelope). An application has no use for them; every
//! supported type is reachable from the crate root or its public modules.

/// The table and block format.
pub mod format {
    pub use crate::format::{FormatError, Row, RowValue};

    /// Data blocks.
    pub mod block {
        pub use crate::format::block::*;
    }

    /// Bloom filters.
    pub mod bloom {
        pub use crate::format::bloom::*;
    }

    /// Whole tables.
    pub mod sst {
        pub use crate::format::sst::*;
    }
}

pub use crate::manifest::compactor_state::{CompactorState, PROTECT_INPUTS_FOR, read_view};
pub use crate::manifest::versioned::{decode_envelope, encode_envelope};
pub use crate::mem::Memtable;
pub use crate::store::reader::{ScanOptions as TableScanOptions, TableReader, TableScan};
pub use crate::store::table::{TableStore, WalTable, WrittenTable};
