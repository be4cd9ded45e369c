//! Records inside a v2 batch: decoding (all four codecs) and re-encoding, for the log cleaner
//! and for the keyed-record check of compacted topics. (Being written: see issue #16.)
