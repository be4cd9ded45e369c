//! The log cleaner (`cleanup.policy=compact`). (Being written: see issue #16.)
