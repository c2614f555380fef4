//! `roundtrip_health`: arbitrary value → encode → parse → the same value.
//!
//! Every value is encoded into a buffer pre-filled with 0xa5 and cut to an arbitrary length, so
//! that the target also checks that `encoded_len` (or the returned length) is exact, that a
//! buffer one byte short is refused with `BufferTooSmall` and left untouched, and that nothing
//! past the message is written.

use arbitrary::{Arbitrary, Result, Unstructured};
use sinew_proto::Error;
use sinew_proto::health::{
    EncodedEntry, HEALTH_LEN, Health, HealthCheck, MAX_DATAGRAM_LEN, MAX_ENTRIES_PER_PAGE,
    MAX_LIVES, Message, PEER_TABLE_HEADER_LEN, PeerEntry, PeerTableRequest, PeerTableResponse,
    PeerTableWriter, Status, peer_table_len,
};
use sinew_proto::nonce::Nonce;

use crate::parse_health::FILL;

/// Size of the output buffers: more than any message, so that a cut can leave slack.
const BUF_LEN: usize = MAX_DATAGRAM_LEN + 32;

/// What one input exercised, for choosing seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Health checks round-tripped.
    pub health_checks: u32,
    /// Peer-table requests round-tripped.
    pub requests: u32,
    /// Peer-table pages round-tripped.
    pub pages: u32,
    /// Most entries in one page.
    pub max_entries: usize,
    /// Pages with both IPv4 and IPv6 entries.
    pub mixed_pages: u32,
    /// Encodings refused for a short buffer.
    pub short_buffers: u32,
    /// Pages refused by the writer's capacity (more entries than fit).
    pub full_pages: u32,
}

/// Runs the round trips decoded from one input.
pub fn check(data: &[u8]) -> Summary {
    let mut u = Unstructured::new(data);
    let mut summary = Summary::default();
    // Stops quietly when the input runs out.
    let _ = run(&mut u, &mut summary);
    summary
}

fn run(u: &mut Unstructured<'_>, summary: &mut Summary) -> Result<()> {
    while !u.is_empty() {
        match u.int_in_range(0..=3u8)? {
            0 => health_check(u, summary)?,
            1 => table_request(u, summary)?,
            2 => table_page(u, summary)?,
            _ => health(u.arbitrary()?),
        }
    }
    Ok(())
}

fn health_check(u: &mut Unstructured<'_>, summary: &mut Summary) -> Result<()> {
    let check = HealthCheck::arbitrary(u)?;
    let cut = u.int_in_range(0..=HEALTH_LEN + 4)?;
    let mut buf = [FILL; HEALTH_LEN + 4];
    let buf = &mut buf[..cut];
    assert_eq!(check.encoded_len(), HEALTH_LEN);
    match check.encode(buf) {
        Ok(len) => {
            assert_eq!(len, check.encoded_len());
            assert!(cut >= len);
            assert_eq!(HealthCheck::parse(&buf[..len]), Ok(check));
            let expected = match check.kind {
                sinew_proto::health::HealthKind::Request => Message::HealthRequest(check.nonce),
                sinew_proto::health::HealthKind::Response => Message::HealthResponse(check.nonce),
            };
            assert_eq!(Message::parse(&buf[..len]), Ok(expected));
            assert_untouched(&buf[len..], "HealthCheck::encode");
            summary.health_checks += 1;
        }
        Err(Error::BufferTooSmall) => {
            assert!(cut < check.encoded_len());
            assert_untouched(buf, "HealthCheck::encode into a short buffer");
            summary.short_buffers += 1;
        }
        Err(error) => panic!("HealthCheck::encode: {error:?}"),
    }
    Ok(())
}

fn table_request(u: &mut Unstructured<'_>, summary: &mut Summary) -> Result<()> {
    let nonce = Nonce::arbitrary(u)?;
    let start = u16::arbitrary(u)?;
    // Mostly a valid length; sometimes any u16, which `encoded_len` clamps.
    let len = if u.ratio(3, 4)? {
        u.int_in_range(PEER_TABLE_HEADER_LEN as u16..=MAX_DATAGRAM_LEN as u16)?
    } else {
        u16::arbitrary(u)?
    };
    let request = PeerTableRequest { nonce, start, len };
    let clamped = usize::from(len).clamp(PEER_TABLE_HEADER_LEN, MAX_DATAGRAM_LEN);
    assert_eq!(request.encoded_len(), clamped);
    assert_eq!(
        request.entry_budget(),
        (clamped - PEER_TABLE_HEADER_LEN) / 19
    );
    assert!(request.entry_budget() <= MAX_ENTRIES_PER_PAGE);
    assert_eq!(
        PeerTableRequest::full_page(nonce, start).encoded_len(),
        MAX_DATAGRAM_LEN
    );

    let cut = u.int_in_range(0..=BUF_LEN)?;
    let mut buf = [FILL; BUF_LEN];
    let buf = &mut buf[..cut];
    match request.encode(buf) {
        Ok(written) => {
            assert_eq!(written, request.encoded_len());
            let expected = PeerTableRequest {
                len: clamped as u16,
                ..request
            };
            assert_eq!(PeerTableRequest::parse(&buf[..written]), Ok(expected));
            assert_eq!(
                Message::parse(&buf[..written]),
                Ok(Message::PeerTableRequest(expected))
            );
            assert_untouched(&buf[written..], "PeerTableRequest::encode");
            summary.requests += 1;
        }
        Err(Error::BufferTooSmall) => {
            assert!(cut < request.encoded_len());
            assert_untouched(buf, "PeerTableRequest::encode into a short buffer");
            summary.short_buffers += 1;
        }
        Err(error) => panic!("PeerTableRequest::encode: {error:?}"),
    }
    Ok(())
}

fn table_page(u: &mut Unstructured<'_>, summary: &mut Summary) -> Result<()> {
    let nonce = Nonce::arbitrary(u)?;
    let start = u16::arbitrary(u)?;
    let count = u.int_in_range(0..=MAX_ENTRIES_PER_PAGE + 2)?;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let entry = PeerEntry::arbitrary(u)?;
        assert!(
            entry.is_valid(),
            "Arbitrary made an entry the writer refuses: {entry:?}"
        );
        entries.push(entry);
    }
    // Mostly a consistent total (start + count <= total); sometimes any u16.
    let total = if u.ratio(3, 4)? {
        let least = u32::from(start) + count as u32;
        let extra = u32::from(u.int_in_range(0..=3u8)?);
        u16::try_from(least + extra).unwrap_or(u16::MAX)
    } else {
        u16::arbitrary(u)?
    };
    let cut = u.int_in_range(0..=BUF_LEN)?;

    let mut storage = [FILL; BUF_LEN];
    let buf = &mut storage[..cut];
    let mut writer = match PeerTableWriter::new(buf, nonce, start, total) {
        Ok(writer) => writer,
        Err(Error::BadLength) => {
            assert!(
                start > total,
                "BadLength for start {start} <= total {total}"
            );
            assert_untouched(
                &storage[..cut],
                "PeerTableWriter::new refusing start > total",
            );
            return Ok(());
        }
        Err(Error::BufferTooSmall) => {
            assert!(start <= total && cut < PEER_TABLE_HEADER_LEN);
            assert_untouched(&storage[..cut], "PeerTableWriter::new into a short buffer");
            summary.short_buffers += 1;
            return Ok(());
        }
        Err(error) => panic!("PeerTableWriter::new: {error:?}"),
    };
    assert!(start <= total, "a page starting past its table's end");
    assert!(cut >= PEER_TABLE_HEADER_LEN);
    let capacity = (cut.min(MAX_DATAGRAM_LEN) - PEER_TABLE_HEADER_LEN) / 19;
    assert!(writer.is_empty());
    let mut pushed = 0;
    for entry in &entries {
        assert_eq!(writer.is_full(), pushed >= capacity);
        // Capacity first, then the table's end; the entries themselves are all valid.
        let past_end = u32::from(start) + pushed as u32 >= u32::from(total);
        match writer.push(entry) {
            Ok(()) => {
                assert!(
                    pushed < capacity,
                    "pushed entry {pushed} beyond capacity {capacity}"
                );
                assert!(
                    !past_end,
                    "pushed entry {pushed} past total {total} from {start}"
                );
                pushed += 1;
            }
            Err(Error::BufferTooSmall) => {
                assert!(pushed >= capacity, "page full at {pushed} < {capacity}");
                summary.full_pages += 1;
            }
            Err(Error::BadLength) => {
                assert!(
                    pushed < capacity && past_end,
                    "BadLength at {pushed} of {start}..{total}"
                );
            }
            Err(error) => panic!("PeerTableWriter::push({entry:?}): {error:?}"),
        }
        assert_eq!(writer.len(), pushed);
        assert_eq!(writer.is_empty(), pushed == 0);
    }
    let len = writer.finish();
    assert_eq!(len, peer_table_len(pushed));
    assert_untouched(&storage[len..cut], "PeerTableWriter");

    // The same page from entries laid out beforehand is the same bytes, whether they are pushed
    // one by one or all at once.
    let encoded: Vec<EncodedEntry> = entries
        .iter()
        .map(|entry| EncodedEntry::new(entry).expect("a valid entry is laid out"))
        .collect();
    assert!(
        encoded
            .iter()
            .map(EncodedEntry::entry)
            .eq(entries.iter().copied())
    );
    for all_at_once in [false, true] {
        let mut again = [FILL; BUF_LEN];
        let mut writer = PeerTableWriter::new(&mut again[..cut], nonce, start, total)
            .expect("the same arguments were accepted");
        let written = if all_at_once {
            writer.extend_encoded(&encoded)
        } else {
            encoded
                .iter()
                .take_while(|entry| writer.push_encoded(entry).is_ok())
                .count()
        };
        assert_eq!(
            written, pushed,
            "encoded entries written (all at once: {all_at_once})"
        );
        assert_eq!(writer.finish(), len);
        assert_eq!(again, storage, "encoded entries wrote other bytes");
    }

    let datagram = &storage[..len];
    match PeerTableResponse::parse(datagram) {
        Ok(page) => {
            assert_eq!(page.nonce(), nonce);
            assert_eq!(page.start(), start);
            assert_eq!(page.total(), total);
            assert_eq!(usize::from(page.count()), pushed);
            assert!(page.entries().eq(entries[..pushed].iter().copied().map(Ok)));
            assert_eq!(
                Message::parse(datagram),
                Ok(Message::PeerTableResponse(page))
            );
            summary.pages += 1;
            summary.max_entries = summary.max_entries.max(pushed);
            let v4 = page.views().any(|e| e.addr().is_ipv4());
            let v6 = page.views().any(|e| e.addr().is_ipv6());
            summary.mixed_pages += u32::from(v4 && v6);
        }
        Err(error) => panic!(
            "PeerTableWriter output refused ({error:?}): start {start}, total {total}, \
             {pushed} entries: {datagram:02x?}"
        ),
    }
    Ok(())
}

fn health(health: Health) {
    assert!(health.lives() <= MAX_LIVES);
    assert_eq!(Health::from_lives(health.lives()), Some(health));
    let status = match health.lives() {
        0 => Status::Unhealthy,
        MAX_LIVES => Status::Healthy,
        _ => Status::AtRisk,
    };
    assert_eq!(health.status(), status);
    assert_eq!(health.gain().lives(), (health.lives() + 1).min(MAX_LIVES));
    assert_eq!(health.lose().lives(), health.lives().saturating_sub(1));
}

fn assert_untouched(bytes: &[u8], what: &str) {
    assert!(
        bytes.iter().all(|&b| b == FILL),
        "{what} wrote outside the message: {bytes:02x?}"
    );
}
