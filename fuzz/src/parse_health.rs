//! `parse_health`: every decoding entry point of the health protocol on the same bytes.
//!
//! Checked, beyond "nothing panics":
//! * the entry points agree: the same error from each for a datagram none accepts, at most one
//!   kind-specific parser succeeds, and [`Message::parse`] succeeds exactly when the parser for
//!   the datagram's kind does, with the same value;
//! * every error is the one the header predicts (too large, truncated, version, unknown or
//!   unexpected type);
//! * the formats are canonical: whatever parses re-encodes to exactly the same bytes (tables are
//!   rebuilt entry by entry with [`PeerTableWriter`]), into a buffer pre-filled with 0xa5 of
//!   which nothing past the message is touched.

use sinew_proto::Error;
use sinew_proto::health::{
    ENTRY_LEN, HEALTH_LEN, HealthCheck, HealthKind, HealthPacket, MAX_DATAGRAM_LEN,
    MAX_ENTRIES_PER_PAGE, Message, MessageKind, PEER_TABLE_HEADER_LEN, PeerEntry, PeerTableRequest,
    PeerTableResponse, PeerTableWriter, peer_table_len,
};
use sinew_proto::nonce::{HEADER_LEN, Header, Nonce, VERSION};

/// Fill byte of every output buffer, so that a byte written past the message shows.
pub const FILL: u8 = 0xa5;

/// Runs every check on one input.
pub fn check(data: &[u8]) {
    let header = Header::new_checked(data);
    check_header(data, header);

    let message = Message::parse(data);
    let packet = HealthPacket::new_checked(data);
    let health = HealthCheck::parse(data);
    let request = PeerTableRequest::parse(data);
    let table = PeerTableResponse::parse(data);

    check_errors(
        data,
        header.map(|h| h.kind()),
        &message,
        &packet,
        &request,
        &table,
    );

    assert_eq!(
        packet.is_ok(),
        health.is_ok(),
        "HealthPacket and HealthCheck disagree"
    );
    if let (Ok(packet), Ok(health)) = (&packet, &health) {
        assert_eq!(packet.kind(), health.kind);
        assert_eq!(packet.nonce(), health.nonce);
        assert_eq!(packet.nonce_bytes(), health.nonce.as_bytes());
        assert_eq!(packet.into_inner(), data);
    }
    let table_valid = table.is_ok_and(|page| page.validate().is_ok());
    let accepted = [packet.is_ok(), request.is_ok(), table_valid];
    let accepted = accepted.iter().filter(|&&ok| ok).count();
    assert!(
        accepted <= 1,
        "{accepted} kind-specific parsers accept {data:02x?}"
    );
    assert_eq!(
        message.is_ok(),
        accepted == 1,
        "Message::parse {message:?} but kind-specific parsers accepted {accepted}"
    );

    let Ok(message) = message else { return };
    let header = header.expect("Message::parse accepted a datagram whose header is refused");
    assert!(data.len() <= MAX_DATAGRAM_LEN);
    assert_eq!(message.nonce(), header.nonce());
    assert_eq!(message.kind().type_byte(), data[0]);
    match message {
        Message::HealthRequest(nonce) | Message::HealthResponse(nonce) => {
            let kind = if matches!(message, Message::HealthRequest(_)) {
                HealthKind::Request
            } else {
                HealthKind::Response
            };
            let parsed =
                health.expect("Message::parse accepted a health packet HealthCheck refuses");
            assert_eq!(parsed, HealthCheck { kind, nonce });
            assert_eq!(kind.message_kind(), message.kind());
            check_health_encode(&parsed, data);
        }
        Message::PeerTableRequest(parsed) => {
            assert_eq!(
                Ok(parsed),
                request,
                "Message::parse and PeerTableRequest::parse disagree"
            );
            check_request_encode(&parsed, data);
        }
        Message::PeerTableResponse(page) => {
            assert_eq!(
                Ok(page),
                table,
                "Message::parse and PeerTableResponse::parse disagree"
            );
            check_table(&page, data);
        }
        other => panic!("a message kind this target does not check: {other:?}"),
    }
}

fn check_header(data: &[u8], header: Result<Header<&[u8]>, Error>) {
    match header {
        Ok(header) => {
            assert!(data.len() >= HEADER_LEN);
            assert_eq!(header.type_byte(), data[0]);
            assert_eq!(header.version(), VERSION);
            assert_eq!(header.kind(), data[0] & 0x1f);
            assert_eq!(&header.nonce_bytes()[..], &data[1..HEADER_LEN]);
            assert_eq!(header.nonce(), Nonce::from_bytes(*header.nonce_bytes()));
            assert_eq!(header.payload(), &data[HEADER_LEN..]);
            assert_eq!(header.into_inner(), data);
        }
        Err(Error::Truncated) => assert!(data.len() < HEADER_LEN),
        Err(Error::UnsupportedVersion(v)) => {
            assert!(data.len() >= HEADER_LEN);
            assert_eq!(v, data[0] >> 5);
            assert_ne!(v, VERSION);
        }
        Err(other) => panic!("Header::new_checked: unexpected error {other:?}"),
    }
}

/// The error every entry point must give is decided by the header alone, except for the
/// entry point of the datagram's own kind, which must agree with [`Message::parse`].
fn check_errors(
    data: &[u8],
    kind: Result<u8, Error>,
    message: &Result<Message<'_>, Error>,
    packet: &Result<HealthPacket<&[u8]>, Error>,
    request: &Result<PeerTableRequest, Error>,
    table: &Result<PeerTableResponse<'_>, Error>,
) {
    let message = message.map(|_| ());
    let results = [
        ("HealthPacket::new_checked", packet.map(|_| ())),
        ("PeerTableRequest::parse", request.map(|_| ())),
        // `PeerTableResponse::parse` checks the structure; entries are checked by `validate`
        // (which `Message::parse` calls), so together they must agree with `Message::parse`.
        (
            "PeerTableResponse::parse + validate",
            table.and_then(|page| page.validate()),
        ),
    ];
    let own = match kind {
        Ok(bits) if data.len() <= MAX_DATAGRAM_LEN => MessageKind::from_kind_bits(bits),
        _ => None,
    };
    let expected_elsewhere = if data.len() > MAX_DATAGRAM_LEN {
        Err(Error::TooLarge)
    } else {
        match kind {
            Err(error) => Err(error),
            Ok(bits) => match MessageKind::from_kind_bits(bits) {
                None => Err(Error::UnknownType(data[0])),
                Some(_) => Err(Error::UnexpectedType(data[0])),
            },
        }
    };
    if own.is_none() {
        assert_eq!(message, expected_elsewhere, "Message::parse on {data:02x?}");
    }
    for (i, (name, result)) in results.into_iter().enumerate() {
        let mine = match own {
            Some(MessageKind::HealthRequest | MessageKind::HealthResponse) => i == 0,
            Some(MessageKind::PeerTableRequest) => i == 1,
            Some(MessageKind::PeerTableResponse) => i == 2,
            Some(other) => panic!("a message kind this target does not check: {other:?}"),
            None => false,
        };
        if mine {
            assert_eq!(
                result, message,
                "{name} and Message::parse disagree on {data:02x?}"
            );
        } else {
            assert_eq!(result, expected_elsewhere, "{name} on {data:02x?}");
        }
    }
}

fn check_health_encode(parsed: &HealthCheck, data: &[u8]) {
    assert_eq!(data.len(), HEALTH_LEN);
    assert_eq!(parsed.encoded_len(), HEALTH_LEN);
    let mut buf = [FILL; HEALTH_LEN + 3];
    assert_eq!(parsed.encode(&mut buf), Ok(HEALTH_LEN));
    assert_eq!(
        &buf[..HEALTH_LEN],
        data,
        "health packet does not re-encode to itself"
    );
    assert_eq!(
        buf[HEALTH_LEN..],
        [FILL; 3],
        "HealthCheck::encode wrote past its length"
    );
    assert_eq!(
        parsed.encode(&mut buf[..HEALTH_LEN - 1]),
        Err(Error::BufferTooSmall)
    );
    if parsed.kind == HealthKind::Request {
        let response = parsed.response();
        assert_eq!(response.kind, HealthKind::Response);
        assert_eq!(response.nonce, parsed.nonce);
    }
}

fn check_request_encode(parsed: &PeerTableRequest, data: &[u8]) {
    assert_eq!(usize::from(parsed.len), data.len());
    assert_eq!(parsed.encoded_len(), data.len());
    assert_eq!(parsed.start.to_be_bytes(), data[17..19]);
    assert_eq!(
        parsed.entry_budget(),
        (data.len() - PEER_TABLE_HEADER_LEN) / ENTRY_LEN
    );
    assert!(parsed.entry_budget() <= MAX_ENTRIES_PER_PAGE);
    let mut buf = [FILL; MAX_DATAGRAM_LEN + 8];
    assert_eq!(parsed.encode(&mut buf), Ok(data.len()));
    assert_eq!(
        &buf[..data.len()],
        data,
        "peer-table request does not re-encode to itself"
    );
    assert!(
        buf[data.len()..].iter().all(|&b| b == FILL),
        "PeerTableRequest::encode wrote past its length"
    );
    assert_eq!(
        parsed.encode(&mut buf[..data.len() - 1]),
        Err(Error::BufferTooSmall)
    );
}

fn check_table(page: &PeerTableResponse<'_>, data: &[u8]) {
    assert_eq!(page.as_bytes(), data);
    let count = usize::from(page.count());
    assert_eq!(data.len(), peer_table_len(count));
    assert!(count <= MAX_ENTRIES_PER_PAGE);
    assert!(u32::from(page.start()) + count as u32 <= u32::from(page.total()));
    let entries = page.entries();
    assert_eq!(entries.len(), count);
    assert_eq!(page.views().len(), count);
    let walked: Vec<PeerEntry> = match entries.collect::<Result<_, _>>() {
        Ok(walked) => walked,
        Err(error) => {
            // Entries are checked as they are walked: a refused entry is refused by
            // `validate` (and so by `Message::parse`) with the same error.
            assert_eq!(page.validate(), Err(error));
            assert_eq!(Message::parse(data), Err(error));
            return;
        }
    };
    assert_eq!(page.validate(), Ok(()));
    assert_eq!(walked.len(), count);
    match page.next_start() {
        Some(next) => {
            assert!(count > 0);
            assert_eq!(usize::from(next), usize::from(page.start()) + count);
            assert!(next < page.total());
        }
        None => {
            assert!(count == 0 || usize::from(page.start()) + count >= usize::from(page.total()));
        }
    }

    // Rebuild the page from what was walked: the bytes must come out identical.
    let mut buf = [FILL; MAX_DATAGRAM_LEN + 8];
    let mut writer = PeerTableWriter::new(
        &mut buf[..data.len()],
        page.nonce(),
        page.start(),
        page.total(),
    )
    .expect("PeerTableWriter::new refuses a buffer a parsed page fits in");
    for entry in &walked {
        assert!(entry.is_valid(), "a parsed entry is not valid: {entry:?}");
        if let Err(error) = writer.push(entry) {
            panic!("PeerTableWriter::push refuses parsed entry {entry:?}: {error:?}");
        }
    }
    assert!(
        writer.is_full(),
        "a parsed page's own length leaves room for more entries"
    );
    assert_eq!(writer.len(), count);
    let len = writer.finish();
    assert_eq!(len, data.len());
    assert_eq!(
        &buf[..len],
        data,
        "peer-table response does not re-encode to itself"
    );
    assert!(
        buf[len..].iter().all(|&b| b == FILL),
        "PeerTableWriter wrote past its length"
    );
}
