//! Model-based property test: a transaction's reads (point gets, scans with
//! random bounds, paged scans) equal those of a plain `BTreeMap` holding the
//! committed state overlaid with the transaction's buffered writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use shoal_kv::Kv;
use shoal_storage::MemoryEngine;

type Writes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Short keys over a tiny alphabet (with 0x00) so writes collide and keys
/// are prefixes of each other.
fn arb_key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![Just(0u8), Just(b'a'), Just(b'b')], 0..3)
}

fn arb_writes() -> impl Strategy<Value = Writes> {
    prop::collection::vec(
        (
            arb_key(),
            prop::option::weighted(0.7, prop::collection::vec(any::<u8>(), 0..3)),
        ),
        0..12,
    )
}

fn apply(model: &mut BTreeMap<Vec<u8>, Vec<u8>>, writes: &Writes) {
    for (k, v) in writes {
        match v {
            Some(v) => model.insert(k.clone(), v.clone()),
            None => model.remove(k),
        };
    }
}

proptest! {
    #[test]
    fn reads_match_model(
        commits in prop::collection::vec(arb_writes(), 0..4),
        own in arb_writes(),
        start in arb_key(),
        end in arb_key(),
        page in 1usize..4,
    ) {
        let kv = Kv::open(Arc::new(MemoryEngine::new())).unwrap();
        let mut model = BTreeMap::new();
        for writes in &commits {
            let txn = kv.begin().unwrap();
            txn.write_all(writes.clone()).unwrap();
            txn.commit().unwrap();
            apply(&mut model, writes);
        }
        let txn = kv.begin().unwrap();
        txn.write_all(own.clone()).unwrap();
        apply(&mut model, &own);

        for k in model.keys().chain(own.iter().map(|(k, _)| k)) {
            prop_assert_eq!(txn.get(k).unwrap(), model.get(k).cloned());
        }

        // An empty end means unbounded.
        let want: Vec<_> = model
            .iter()
            .filter(|(k, _)| **k >= start && (end.is_empty() || **k < end))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        prop_assert_eq!(&txn.scan(&start, &end, usize::MAX).unwrap(), &want);

        let mut paged = Vec::new();
        let mut from = start.clone();
        loop {
            let chunk = txn.scan(&from, &end, page).unwrap();
            prop_assert!(chunk.len() <= page);
            let done = chunk.len() < page;
            if let Some((last, _)) = chunk.last() {
                from = last.clone();
                from.push(0);
            }
            paged.extend(chunk);
            if done {
                break;
            }
        }
        prop_assert_eq!(paged, want);
    }
}
