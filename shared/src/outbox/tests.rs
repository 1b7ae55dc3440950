//! Log lines through the outbox: pieces keep their line's number across chunks and
//! splits, both chunk formats are read, and batches that lie are refused.

use serde::Serialize;

use super::*;
use crate::clock::Timestamp;
use crate::ids::Name;

fn source(file: &str) -> LogSource {
    LogSource {
        instance: Name::parse("w1").unwrap(),
        component: Name::parse("web").unwrap(),
        replica: 0,
        stream: LogStream::File(file.into()),
    }
}

fn chunk(file: &str, first: u64, n: usize) -> LogChunk {
    LogChunk::whole(
        source(file),
        first,
        Timestamp(1_700_000_000_000),
        (0..n)
            .map(|i| format!("line {} of {file}", first + i as u64))
            .collect(),
    )
}

#[test]
fn pieces_keep_their_line_s_number_across_chunks_and_splits() {
    // Line 7 whole, line 8 in three pieces, line 9 whole, line 10 begun.
    let mut c = chunk("a.log", 7, 0);
    for (text, more) in [("7", false), ("8a", true), ("8b", true), ("8c", false)] {
        c.push(text.into(), more);
    }
    c.push("9".into(), false);
    c.push("10a".into(), true);
    let pos: Vec<(u64, u32, bool)> = c
        .positions()
        .map(|p| (p.line, p.part, p.continued))
        .collect();
    assert_eq!(
        pos,
        [
            (7, 0, false),
            (8, 0, true),
            (8, 1, true),
            (8, 2, false),
            (9, 0, false),
            (10, 0, true)
        ]
    );
    assert_eq!(c.span().lines, 4, "lines 7 to 10");
    assert_eq!(c.end(), (10, 1));
    let mut head = c.clone();
    let tail = head.split_off(2);
    assert_eq!((tail.first_line, tail.pieces.first_part), (8, 1));
    let again: Vec<(u64, u32, bool)> = head
        .positions()
        .chain(tail.positions())
        .map(|p| (p.line, p.part, p.continued))
        .collect();
    assert_eq!(again, pos);
    assert_eq!((head.span().lines, tail.span().lines), (2, 3));
    // Through a batch, and dropped: line 8 counts once.
    let batch = LogBatch::pack(&[head.clone(), tail.clone()]).unwrap();
    assert_eq!(batch.unpack().unwrap(), vec![head, tail]);
    let mut d = LogsDropped::default();
    d.add_batch(&batch);
    assert_eq!((d.lines(), d.spans.len()), (4, 1));
}

#[test]
fn batches_of_chunk_format_1_are_still_read() {
    #[derive(Serialize)]
    struct V1<'a> {
        source: &'a LogSource,
        first_line: u64,
        time: Timestamp,
        lines: &'a [String],
    }
    let c = chunk("a.log", 3, 4);
    let raw = postcard::to_stdvec(&vec![V1 {
        source: &c.source,
        first_line: c.first_line,
        time: c.time,
        lines: &c.lines,
    }])
    .unwrap();
    let old = LogBatch {
        spans: vec![c.span()],
        raw_len: raw.len() as u32,
        data: zstd::bulk::compress(&raw, ZSTD_LEVEL).unwrap(),
    };
    assert_eq!(old.unpack().unwrap(), vec![c]);
}

#[test]
fn pieces_that_do_not_match_their_lines_are_refused() {
    let mut c = chunk("a.log", 1, 2);
    c.pieces.continued = vec![5];
    let batch = LogBatch::pack(std::slice::from_ref(&c)).unwrap();
    assert!(matches!(batch.unpack(), Err(BatchError::Decode(_))));
    c.pieces.continued = vec![1, 0];
    let batch = LogBatch::pack(std::slice::from_ref(&c)).unwrap();
    assert!(matches!(batch.unpack(), Err(BatchError::Decode(_))));
}

#[test]
fn batches_round_trip_and_compress() {
    let chunks = vec![chunk("a.log", 1, 500), chunk("b.log", 7, 500)];
    let batch = LogBatch::pack(&chunks).unwrap();
    assert_eq!(batch.lines(), 1000);
    assert!(
        batch.data.len() * 4 < batch.raw_len as usize,
        "{}",
        batch.data.len()
    );
    assert_eq!(batch.unpack().unwrap(), chunks);
}

#[test]
fn a_batch_that_lies_is_refused() {
    let mut batch = LogBatch::pack(&[chunk("a.log", 1, 10)]).unwrap();
    batch.spans[0].lines = 11;
    assert_eq!(batch.unpack(), Err(BatchError::SummaryMismatch));
    let mut batch = LogBatch::pack(&[chunk("a.log", 1, 10)]).unwrap();
    batch.raw_len = u32::MAX;
    assert!(matches!(batch.unpack(), Err(BatchError::TooLarge(_))));
    let mut batch = LogBatch::pack(&[chunk("a.log", 1, 10)]).unwrap();
    batch.raw_len -= 1;
    assert!(batch.unpack().is_err());
    batch.raw_len += 1;
    batch.data.truncate(3);
    assert!(batch.unpack().is_err());
}

#[test]
fn bytes_after_the_zstd_frame_are_refused() {
    let batch = LogBatch::pack(&[chunk("a.log", 1, 10)]).unwrap();
    // A second frame of nothing: zstd alone decompresses both to the same bytes.
    let mut two = batch.clone();
    two.data
        .extend(zstd::bulk::compress(&[], ZSTD_LEVEL).unwrap());
    assert!(zstd::bulk::decompress(&two.data, two.raw_len as usize).is_ok());
    assert!(matches!(two.unpack(), Err(BatchError::Decode(_))));
    let mut junk = batch.clone();
    junk.data.push(0);
    assert!(matches!(junk.unpack(), Err(BatchError::Decode(_))));
    // A frame that says it holds less than the batch does.
    let mut short = batch;
    short.data = zstd::bulk::compress(b"abc", ZSTD_LEVEL).unwrap();
    short.raw_len = 3;
    assert!(short.unpack().is_err());
    let text = compress_text(b"hello").unwrap();
    assert_eq!(decompress_text(&text, 100).unwrap(), b"hello");
    assert!(decompress_text(&text, 4).is_err());
    let mut trailing = text;
    trailing.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]);
    assert!(decompress_text(&trailing, 100).is_err());
}

#[test]
fn drops_merge_runs_per_source() {
    let mut d = LogsDropped::default();
    d.add_batch(&LogBatch::pack(&[chunk("a.log", 1, 10), chunk("b.log", 1, 5)]).unwrap());
    d.add_batch(&LogBatch::pack(&[chunk("a.log", 11, 10)]).unwrap());
    d.add_batch(&LogBatch::pack(&[chunk("a.log", 40, 1)]).unwrap());
    assert_eq!(d.lines(), 26);
    assert_eq!(d.batches, 3);
    assert_eq!(d.spans.len(), 3);
    assert_eq!((d.spans[0].first_line, d.spans[0].lines), (1, 20));
}
