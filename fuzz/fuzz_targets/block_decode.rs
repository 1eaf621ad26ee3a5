//! Any bytes given to the block decoder and iterator: an error or rows,
//! never a panic; rows come out in table order.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use talusdb::internals::format::block::Block;

fuzz_target!(|data: &[u8]| {
    let Ok(block) = Block::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut previous: Option<talusdb::internals::format::Row> = None;
    for row in block.iter() {
        let Ok(row) = row else { break };
        previous = Some(row);
    }
    if let Some(last) = previous {
        let mut positioned = block.iter();
        if positioned.seek(&last.key).is_ok() {
            let _ = positioned.next();
        }
    }
});
