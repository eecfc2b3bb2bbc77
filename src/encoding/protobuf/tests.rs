//! The encoder against byte strings worked out by hand from the wire format
//! (see the module's docs): each expected byte is annotated with what it is.

use super::*;
use crate::encoding::Format;
use crate::metrics::key::LabelNames;

fn encoded(v: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    varint(&mut buf, v);
    buf
}

#[test]
fn varints_are_seven_bits_a_byte_least_significant_first() {
    assert_eq!(encoded(0), [0x00]);
    assert_eq!(encoded(1), [0x01]);
    assert_eq!(encoded(127), [0x7f]);
    assert_eq!(encoded(128), [0x80, 0x01]);
    // 300 = 0b10_0101100: 0101100 with the high bit, then 10.
    assert_eq!(encoded(300), [0xac, 0x02]);
    assert_eq!(encoded(16_383), [0xff, 0x7f]);
    assert_eq!(encoded(16_384), [0x80, 0x80, 0x01]);
    let mut max = vec![0xff; 9];
    max.push(0x01);
    assert_eq!(encoded(u64::MAX), max);
    for v in [0, 1, 127, 128, 300, 16_383, 16_384, 1 << 35, u64::MAX] {
        assert_eq!(varint_len(v), encoded(v).len(), "{v}");
    }
}

#[test]
fn zigzag_interleaves_the_signs() {
    assert_eq!(zigzag(0), 0);
    assert_eq!(zigzag(-1), 1);
    assert_eq!(zigzag(1), 2);
    assert_eq!(zigzag(-2), 3);
    assert_eq!(zigzag(2), 4);
    assert_eq!(zigzag(i64::MAX), u64::MAX - 1);
    assert_eq!(zigzag(i64::MIN), u64::MAX);
}

#[test]
fn lengths_that_outgrow_or_undershoot_their_room_move_the_body() {
    for (reserve, len) in [(1, 0), (1, 127), (1, 128), (1, 20_000), (3, 5), (3, 300)] {
        let mut buf = vec![0xaa];
        length_prefixed(&mut buf, reserve, |buf| {
            buf.extend((0..len).map(|i| i as u8))
        });
        let mut want = vec![0xaa];
        varint(&mut want, len as u64);
        want.extend((0..len).map(|i| i as u8));
        assert_eq!(buf, want, "reserve {reserve}, length {len}");
    }
}

const TWO: [u8; 8] = [0, 0, 0, 0, 0, 0, 0, 0x40];

#[test]
fn constant_labels_come_first_and_collectors_write_the_same_messages() {
    let names = LabelNames::with_constants(&[("zone", "z\"1")], &["q"]);
    let mut buf = Vec::new();
    collected_value(&mut buf, MetricType::Counter, &names, &["fast"], 2.0);
    let mut want = vec![0x22, 35];
    want.extend([0x0a, 11, 0x0a, 4]);
    want.extend(b"zone");
    want.extend([0x12, 3]);
    want.extend(b"z\"1"); // raw: protobuf strings need no escaping
    want.extend([0x0a, 9, 0x0a, 1, b'q', 0x12, 4]);
    want.extend(b"fast");
    want.extend([0x1a, 9, 0x09]);
    want.extend(TWO);
    assert_eq!(buf, want);
}

#[test]
fn protobuf_is_negotiated_by_weight_and_only_as_delimited_metric_families() {
    const PB: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
    // What Prometheus 2.42 sends with `--enable-feature=native-histograms`
    // (captured from a scrape): protobuf first, at the implied weight 1.
    let prometheus = format!(
        "{PB},application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    );
    assert_eq!(Format::from_accept(&prometheus), Format::Protobuf);
    assert_eq!(
        Format::from_accept(&format!("{PB};q=0.7,text/plain;q=0.3")),
        Format::Protobuf
    );
    assert_eq!(
        Format::from_accept(&format!("{PB};q=0.3,text/plain;q=0.5")),
        Format::Text
    );
    assert_eq!(
        Format::from_accept(&format!("application/openmetrics-text;q=0.5,{PB};q=0.5")),
        Format::Protobuf,
        "a tie goes to protobuf"
    );
    assert_eq!(
        Format::from_accept(
            "application/vnd.google.protobuf; proto=\"io.prometheus.client.MetricFamily\"; encoding=\"delimited\""
        ),
        Format::Protobuf
    );
    for other in [
        "application/vnd.google.protobuf",
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=compact-text",
        "application/vnd.google.protobuf;proto=other.Message;encoding=delimited",
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0",
    ] {
        assert_eq!(Format::from_accept(other), Format::Text, "{other}");
    }
    assert_eq!(
        Format::Protobuf.content_type(),
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    );
}

#[test]
fn a_malformed_weight_drops_its_media_range() {
    const PB: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
    // q=2 is no weight: the range is ignored rather than preferred.
    let accept = format!("{PB};q=2,application/openmetrics-text;q=0.5");
    assert_eq!(Format::from_accept(&accept), Format::OpenMetrics);
    let accept = format!("{PB};q=.9,text/plain;q=0.1");
    assert_eq!(Format::from_accept(&accept), Format::Text);
}
